/**
 * Per-route scope, decided in one function so no call site can drift: which
 * routes need no login, and which scope a request needs. A view token may
 * read (GET, HEAD, WebSocket); everything that can change the cluster needs
 * admin. (fastify keeps a route's auth, limits and error handling in one
 * place for the same reason.)
 */
import type { Scope } from '../tokens/store.js';
import { GATEWAY_CRL_PATH } from '../pki/validity.js';

export type Route =
  | { kind: 'health'; auth: false }
  | { kind: 'crl'; auth: false }
  | { kind: 'login'; auth: false }
  | { kind: 'logout'; auth: false }
  | { kind: 'proxy'; auth: true; need: Scope };

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Scheduler routes that change state even on GET (the scheduler's opt-in
 * /api/v1/retire_workers and adaptive_target).
 */
const ADMIN_PREFIXES = ['/api/'];

export function routeFor(method: string, path: string, upgrade: boolean): Route {
  if (path === '/gateway/health') return { kind: 'health', auth: false };
  // The CRL Distribution Point of the gateway's certificate: public, CA-signed data.
  if (path === GATEWAY_CRL_PATH) return { kind: 'crl', auth: false };
  if (path === '/gateway/login') return { kind: 'login', auth: false };
  if (path === '/gateway/logout') return { kind: 'logout', auth: false };
  const adminPath = ADMIN_PREFIXES.some((p) => path === p.slice(0, -1) || path.startsWith(p));
  const read = upgrade ? method === 'GET' : READ_METHODS.has(method);
  return { kind: 'proxy', auth: true, need: read && !adminPath ? 'view' : 'admin' };
}

export function allows(have: Scope, need: Scope): boolean {
  return have === 'admin' || need === 'view';
}
