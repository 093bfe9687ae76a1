/**
 * Port 8787: the Dask dashboard over HTTPS for members only. Wires the token
 * cache, the authenticator, TLS (hot-swapped on trust reload) and the server,
 * and exposes the component to the composition root.
 *
 * Folder map: auth.ts (who is asking), session-cookie.ts (browser sessions),
 * routes.ts (which scope a route needs), request-target.ts (path sanity),
 * server.ts (the pipeline), proxy.ts (upstream leg), disconnects.ts (peers
 * going away), websockets.ts (open WebSockets, limits, revocation),
 * refusals.ts (audit + count), pages.ts, security-headers.ts, tls.ts; failed
 * logins are limited by limits/failure-limiter.ts. Nothing here imports
 * terminator/ or telemetry/ code other than the injected metrics.
 */
import type { AddressInfo } from 'node:net';
import type { Component, GatewayContext } from '../runtime/context.js';
import { dashboardKeys, type DashboardConfig } from '../config/keys/dashboard.js';
import { formatEndpoint } from '../config/spec.js';
import type { PkiSource } from '../runtime/material.js';
import { TokenStore } from '../tokens/store.js';
import { TokenCache } from '../tokens/cache.js';
import { Authenticator } from './auth.js';
import { SessionCookies, sessionKeyFrom } from './session-cookie.js';
import { DashboardServer, type DashboardLimits } from './server.js';
import { certificateFiles, dashboardTls } from './tls.js';
import { dashboardError } from './errors.js';
import { CrlFile } from './crl.js';
import { linkTemplate } from '../pki/dashboard-link.js';
import { statePath } from '../pki/state-dir.js';
import { isLoopbackHost } from '../config/loopback.js';
import { RefusalCoalescer } from '../log/coalesce.js';
import { guardConnections } from '../limits/connection-guard.js';
import { Refusals } from './refusals.js';

export interface DashboardDeps {
  /** The token store; by default <stateDir>/tokens.db, opened (and closed) by the component. */
  readonly tokens?: TokenStore;
  readonly limits?: Partial<DashboardLimits>;
}

/** The dashboard's keys (max-connections as the descriptor budget left it) and the CRL it serves at /crl.pem. */
export interface DashboardOptions extends DashboardConfig {
  readonly crlPath: string | undefined;
}

export interface DashboardComponent extends Component {
  /** Where 8787 actually listens (port 0 resolved); undefined when the dashboard is disabled. */
  readonly address: AddressInfo | undefined;
  /** The value clients should set as distributed.dashboard.link. */
  readonly linkTemplate: string | undefined;
  readonly server: DashboardServer | undefined;
}

export async function startDashboard(ctx: GatewayContext, cfg: DashboardOptions, deps: DashboardDeps = {}): Promise<DashboardComponent> {
  const log = ctx.log.child({ component: 'dashboard' });
  if (!cfg.enabled) {
    log.info('dashboard_disabled');
    return { name: 'dashboard', address: undefined, linkTemplate: undefined, server: undefined, drain: async () => {}, close: async () => {} };
  }
  const { listen, upstream, clientCertAuth } = cfg;
  if (upstream.host === undefined || !isLoopbackHost(upstream.host)) throw dashboardError('upstreamNotLoopback', { address: formatEndpoint(upstream) });
  const files = certificateFiles(cfg.tlsCert, cfg.tlsKey);

  const ownStore = !deps.tokens && ctx.stateDir !== undefined;
  const store = deps.tokens ?? (ctx.stateDir !== undefined ? TokenStore.open(ctx.stateDir, { now: ctx.now }) : undefined);
  if (!store && !clientCertAuth) throw dashboardError('noCredentials');
  const cache = store
    ? new TokenCache(store, {
        now: ctx.now,
        onInvalidated: (id, reason) => {
          const n = ctx.sessions.revokeToken(id, reason);
          log.audit('dashboard_token_invalidated', { token_id: id, reason, sessions_closed: n });
        },
        onStoreError: (e) => {
          ctx.metrics.tokenStoreErrorsTotal.inc({ code: (e as { code?: string }).code ?? 'unknown' });
          log.error('dashboard_tokens_store_error', { error: e });
        },
      })
    : undefined;
  cache?.start();

  const cookies = new SessionCookies(cfg.sessionTtl, sessionKeyFrom(ctx.trust.current().keyPem, ctx.clusterId));
  const auth = new Authenticator({ tokens: cache, cookies, clientCertAuth, trust: ctx.trust, clusterId: ctx.clusterId, now: ctx.now, allowMissingEku: ctx.allowMissingEku });
  const coalescer = new RefusalCoalescer(log, { port: '8787', onCoalesced: () => ctx.metrics.logLinesCoalescedTotal.inc({ port: '8787' }) });
  const dash = new DashboardServer({
    log,
    metrics: ctx.metrics,
    sessions: ctx.sessions,
    auth,
    upstream: { host: upstream.host, port: upstream.port },
    tls: dashboardTls(ctx.trust.current(), files),
    requestCert: clientCertAuth,
    maxWebSocketsPerIdentity: cfg.maxWebSocketsPerIdentity,
    limits: deps.limits,
    now: ctx.now,
    crl: new CrlFile(cfg.crlPath),
    coalescer,
  });
  // Caps before TLS: the descriptor budget (compose.ts) may have lowered dashboard.max-connections.
  const overCap = new Refusals(log, ctx.metrics, coalescer);
  guardConnections(dash.server, {
    maxConnections: cfg.maxConnections,
    maxPerAddress: cfg.maxConnectionsPerAddress,
    flags: { maxConnections: dashboardKeys.maxConnections.flag, maxPerAddress: dashboardKeys.maxConnectionsPerAddress.flag },
    onRefused: (reason, address, detail) => overCap.record(undefined, reason, 0, { detail }, address),
  });
  const unsubscribe = ctx.trust.onChange((m) => {
    try {
      dash.setSecureContext(dashboardTls(m, files));
      cookies.rekey(sessionKeyFrom(m.keyPem, ctx.clusterId));
      log.info('dashboard_tls_reloaded', { version: m.version });
    } catch (e) {
      // A failed reload keeps the old certificate.
      log.error('dashboard_tls_reload_failed', { error: e });
    }
  });

  const shutdown = () => {
    unsubscribe();
    coalescer.close();
    cache?.stop();
    dash.close();
    if (ownStore) store?.close();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      dash.server.once('error', reject);
      const opts = listen.path !== undefined ? { path: listen.path } : { host: listen.host, port: listen.port };
      dash.server.listen(opts, () => {
        dash.server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    shutdown();
    throw dashboardError('listen', { address: listen.path ?? `${listen.host}:${listen.port}`, reason: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
  }
  dash.server.on('error', (e) => log.error('dashboard_server_error', { error: e }));
  const address = dash.server.address() as AddressInfo;
  const link = linkTemplate(address.port);
  log.info('dashboard_listening', {
    address: `${address.address}:${address.port}`,
    upstream: `${upstream.host}:${upstream.port}`,
    client_cert_auth: clientCertAuth,
    tokens: store ? store.path : 'disabled (no state directory)',
    certificate: files ? files.cert : 'cluster gateway certificate',
    dashboard_link: link,
    hint: `clients: export DASK_DISTRIBUTED__DASHBOARD__LINK='${link}'`,
  });

  let closed = false;
  return {
    name: 'dashboard',
    address,
    linkTemplate: link,
    server: dash,
    async drain(deadlineMs: number) {
      dash.server.close();
      dash.server.closeIdleConnections();
      const until = Date.now() + deadlineMs;
      while (Date.now() < until && (await connections(dash)) > dash.websockets.size) await new Promise((r) => setTimeout(r, 50));
      dash.websockets.closeAll('drain');
    },
    async close() {
      if (closed) return;
      closed = true;
      dash.websockets.closeAll('drain');
      await new Promise<void>((resolve) => {
        dash.server.close(() => resolve());
        dash.server.closeAllConnections();
      });
      shutdown();
    },
  };
}

/** Bring-your-own PEM mode (--tls-cert): its --tls-crl, if any; otherwise the state directory's crl.pem. */
/** The CRL of the cluster's own PKI, or the one given with a bring-your-own PKI (none: /crl.pem answers 404). */
export function crlPathFor(pki: PkiSource): string | undefined {
  return pki.mode === 'pem' ? pki.crlPath : statePath(pki.dir, 'crl');
}

function connections(dash: DashboardServer): Promise<number> {
  return new Promise((resolve) => dash.server.getConnections((_e, n) => resolve(n ?? 0)));
}
