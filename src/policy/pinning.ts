/**
 * Identity pinning helpers: the scheduler
 * trusts a worker's declared address and later dials it, so the host part of
 * that address must be where the connection really comes from, or a name the
 * peer's certificate vouches for.
 */

/** The host of a Dask address (`tls://10.0.0.5:4000`, `tcp://[::1]:1`, `tls://w1.internal:4000`), lower-cased; null if none. */
export function hostOfAddress(address: string): string | null {
  let rest = address;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(rest);
  if (scheme) rest = rest.slice(scheme[0].length);
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 2) return null;
    return normalizeHost(rest.slice(1, close));
  }
  const colon = rest.lastIndexOf(':');
  const host = colon < 0 ? rest : rest.slice(0, colon);
  if (host === '' || host.includes('/') || host.includes(':')) return null;
  return normalizeHost(host);
}

/** Lower-cases and unwraps IPv4-mapped IPv6 (`::ffff:10.0.0.5`), as Node reports dual-stack peers. */
export function normalizeHost(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith('::ffff:') && h.includes('.') ? h.slice(7) : h;
}

/** The hosts a peer may declare: its source address and its certificate's DNS/IP SANs. */
export function allowedHosts(remoteAddress: string, sanHosts: readonly string[]): ReadonlySet<string> {
  return new Set([normalizeHost(remoteAddress), ...sanHosts.map(normalizeHost)]);
}
