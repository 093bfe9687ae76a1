/**
 * The one loopback predicate of the gateway (metrics listener, dashboard
 * upstream, scrape target, development receiver): 127.0.0.0/8 and ::1 in any
 * spelling (IPv4-mapped ::ffff:127.x.x.x in dotted or hex form, the long form
 * of ::1, brackets around IPv6), and the name localhost. Node's BlockList
 * decides from the parsed address, not from the string's shape, so no
 * spelling of loopback is refused and no other address passes for it.
 */
import { BlockList, isIP } from 'node:net';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

export function isLoopbackHost(host: string): boolean {
  const bracketed = /^\[(.*)\]$/.exec(host)?.[1];
  const h = bracketed !== undefined && isIP(bracketed) === 6 ? bracketed : host;
  if (h.toLowerCase() === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 6 ? 'ipv6' : 'ipv4');
}
