/**
 * Counts per source address, for the per-address limits of every listener
 * (8786, 8787, 8789). An IPv6 peer is counted by its /64: one host gets a
 * whole /64 from its provider, so a per-address limit on full IPv6 addresses
 * would limit nothing. IPv4-mapped IPv6 addresses count as their IPv4 form.
 */
import { isIPv6 } from 'node:net';

/** The key a peer's address is counted under. */
export function sourceOf(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  return `${expandIPv6(address).slice(0, 4).join(':')}::/64`;
}

function expandIPv6(a: string): string[] {
  const [head, tail] = a.split('%')[0]!.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => (g === '' ? '0' : g.toLowerCase().replace(/^0+(?=.)/, '')));
}

/** Live counts by key; a key at zero is forgotten, so the table holds only keys in use. */
export class Counts {
  readonly #m = new Map<string, number>();

  get(key: string): number {
    return this.#m.get(key) ?? 0;
  }

  add(key: string): void {
    this.#m.set(key, this.get(key) + 1);
  }

  remove(key: string): void {
    const n = this.get(key) - 1;
    if (n > 0) this.#m.set(key, n);
    else this.#m.delete(key);
  }

  get size(): number {
    return this.#m.size;
  }
}
