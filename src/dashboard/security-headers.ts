/** Headers on every response of 8787, proxied or our own. */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

/** The dashboard's own scripts need a permissive CSP; only framing is forbidden there. */
export const PROXIED_CSP = "frame-ancestors 'none'";
/** Our own pages (login, errors) need nothing but inline styles and a form posting to us. */
export const OWN_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function applySecurityHeaders(res: ServerResponse, csp: string): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
  res.setHeader('content-security-policy', csp);
}

/** Upstream must not weaken ours: its values for these names are replaced. */
export function overrideUpstreamHeaders(headers: OutgoingHttpHeaders | NodeJS.Dict<string | string[]>): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) headers[k] = v;
  // Several CSP headers are all enforced, so adding ours cannot loosen upstream's.
  const csp = headers['content-security-policy'];
  const upstream = (Array.isArray(csp) ? csp : typeof csp === 'string' ? [csp] : []).filter(Boolean);
  headers['content-security-policy'] = [...upstream, PROXIED_CSP];
}
