/**
 * The credentials listener (default 0.0.0.0:8789): HTTPS that requires a
 * client certificate of this cluster. Separate from 8787 so browsers there
 * never see a certificate prompt and the credential surface is one small,
 * GET-only server with nothing else on it (docs/credentials.md).
 *
 * OpenSSL is told not to reject unverified peers so that every refusal gets
 * a precise reason, an audit line and a JSON body; nothing is served before
 * checkAccess() has passed on that very request.
 *
 *   GET /v1/credentials/aws   AWS credential_process JSON
 *   GET /v1/credentials/NAME  the generic form of provider NAME
 *   GET /v1/credentials       {"version": 1, "credentials": [generic form, ...]}
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { GatewayContext } from '../runtime/context.js';
import type { Endpoint } from '../config/spec.js';
import { credentialsKeys } from '../config/keys/credentials.js';
import { secureContextOptions } from '../pki/tls-policy.js';
import { peerCertificateDer } from '../pki/peer-certificate.js';
import { checkAccess, type Access } from './access.js';
import { awsProcessJson, genericJson } from './credential.js';
import type { CredentialHolder } from './holder.js';
import { RefusalCoalescer } from '../log/coalesce.js';
import { guardConnections } from '../limits/connection-guard.js';
import { sourceOf } from '../limits/source-counts.js';

export interface CredentialsServerOptions {
  readonly listen: Endpoint;
  readonly holder: CredentialHolder;
  /** Which sources are configured, for the "nothing here" message. */
  readonly sources: readonly string[];
  readonly maxConnections: number;
  readonly maxPerAddress: number;
}

export interface CredentialsServer {
  readonly address: AddressInfo;
  drain(deadlineMs: number): Promise<void>;
  close(): Promise<void>;
}

const PROVIDER_PATH = /^\/v1\/credentials\/([a-z][a-z0-9-]{0,31})$/;

export async function startCredentialsServer(ctx: GatewayContext, o: CredentialsServerOptions): Promise<CredentialsServer> {
  const log = ctx.log.child({ component: 'credentials' });
  const { metrics } = ctx;
  const server: Server = createServer({
    ...secureContextOptions(ctx.trust.current()),
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: 10_000,
    maxHeaderSize: 8192,
    requestTimeout: 10_000,
    headersTimeout: 5_000,
    keepAliveTimeout: 5_000,
  });
  // Refusals are counted every time and written in full once per source and reason per interval (log/coalesce.ts).
  const coalescer = new RefusalCoalescer(log, { port: 'credentials', onCoalesced: () => metrics.logLinesCoalescedTotal.inc({ port: 'credentials' }) });
  const refused = (reason: string, remote: string | undefined, subject?: string) => {
    metrics.refusalsTotal.inc({ port: 'credentials', reason });
    return coalescer.admit(sourceOf(remote), reason, subject);
  };
  guardConnections(server, {
    maxConnections: o.maxConnections,
    maxPerAddress: o.maxPerAddress,
    flags: { maxConnections: credentialsKeys.maxConnections.flag, maxPerAddress: credentialsKeys.maxConnectionsPerAddress.flag },
    onRefused: (reason, remote, detail) => {
      if (refused(reason, remote)) log.audit('credentials_refused', { reason, remote, detail });
    },
  });
  const offTrust = ctx.trust.onChange((m) => server.setSecureContext(secureContextOptions(m)));
  // One registration per authenticated connection, so a revocation closes its keep-alive socket at once.
  const registered = new WeakSet<TLSSocket>();

  server.on('tlsClientError', (e: NodeJS.ErrnoException, socket: TLSSocket) => {
    if (refused('handshake', socket.remoteAddress)) log.audit('credentials_refused', { reason: 'handshake', remote: socket.remoteAddress, code: e.code });
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket;
    const access = checkAccess(socket, { clusterId: ctx.clusterId, isRevoked: (s) => ctx.trust.isRevoked(s), now: ctx.now(), allowMissingEku: ctx.allowMissingEku });
    const path = (req.url ?? '').split('?')[0] ?? '';
    const who = { identity: access.identity, serial: access.serial, remote: socket.remoteAddress, method: req.method, path: path.slice(0, 128) };
    if (!access.ok) {
      metrics.credentialFetchesTotal.inc({ result: 'refused' });
      if (refused(access.reason, socket.remoteAddress, access.identity ?? access.serial)) log.audit('credentials_fetch', { result: 'refused', reason: access.reason, status: access.status, ...who });
      const message = access.status === 403
        ? `certificate ${access.identity ?? access.serial ?? ''} may not read credentials (${access.reason}): only worker and admin certificates of this cluster may`
        : `a client certificate issued by this cluster's CA is required (${access.reason})`;
      return send(res, access.status, { error: { code: access.status === 403 ? 'forbidden' : 'unauthenticated', reason: access.reason, message } }, true);
    }
    register(socket, access);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return fail(res, 405, 'method_not_allowed', 'only GET is served here', who, 'refused');
    }
    if (path === '/v1/credentials') {
      const sets = o.holder.all();
      if (sets.length === 0) return unavailable(res, undefined, who);
      metrics.credentialFetchesTotal.inc({ result: 'served' });
      log.audit('credentials_fetch', { result: 'allowed', providers: sets.map((s) => s.provider), expires: sets.map((s) => s.expiration.toISOString()), ...who });
      return send(res, 200, { version: 1, credentials: sets.map(genericJson) });
    }
    const m = PROVIDER_PATH.exec(path);
    if (!m) return fail(res, 404, 'not_found', 'no such endpoint: GET /v1/credentials/aws, /v1/credentials/PROVIDER or /v1/credentials', who, 'not_found');
    const provider = m[1]!;
    const l = o.holder.lookup(provider);
    if (l.state !== 'ok') return unavailable(res, provider, who);
    metrics.credentialFetchesTotal.inc({ result: 'served' });
    log.audit('credentials_fetch', { result: 'allowed', provider, expires: l.set.expiration.toISOString(), version: l.version, ...who });
    send(res, 200, provider === 'aws' ? awsProcessJson(l.set) : genericJson(l.set));
  });

  function register(socket: TLSSocket, a: Extract<Access, { ok: true }>): void {
    if (registered.has(socket)) return;
    registered.add(socket);
    metrics.connectionsTotal.inc({ port: 'credentials', role: a.role });
    const off = ctx.sessions.add({ kind: 'credentials', serial: a.serial, peerCertificate: () => peerCertificateDer(socket), close: () => socket.destroy() });
    socket.once('close', off);
  }

  function unavailable(res: ServerResponse, provider: string | undefined, who: Record<string, unknown>): void {
    const l = provider ? o.holder.lookup(provider) : { state: 'none' as const };
    const name = provider ?? 'any provider';
    let message: string;
    let code: string;
    if (l.state === 'expired') {
      code = 'expired';
      message = `the ${name} credential expired at ${l.expiredAt.toISOString()} and no newer one has arrived; retry shortly`;
    } else if (o.sources.length === 0) {
      code = 'not_configured';
      message = 'no credentials are configured on this gateway (see --credentials-file, --credentials-command, or a control-plane push)';
    } else {
      code = 'unavailable';
      message = `no ${name} credential is held yet (sources: ${o.sources.join(', ')}); retry shortly`;
    }
    fail(res, 503, code, message, who, code);
  }

  function fail(res: ServerResponse, status: number, code: string, message: string, who: Record<string, unknown>, result: string): void {
    metrics.credentialFetchesTotal.inc({ result });
    log.audit('credentials_fetch', { result, status, ...who });
    send(res, status, { error: { code, message } });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After listen, an error (EMFILE at accept, ...) is an event to log, never a crash.
  server.on('error', (e: NodeJS.ErrnoException) => log.error('credentials_server_error', { code: e.code, error: e }));
  const address = server.address() as AddressInfo;
  log.info('credentials_listening', { address: address.address, port: address.port });

  let closed: Promise<void> | undefined;
  const stop = () => (closed ??= new Promise<void>((resolve) => {
    offTrust();
    coalescer.close();
    server.close(() => resolve());
    server.closeIdleConnections();
  }));
  return {
    address,
    async drain(deadlineMs) {
      const done = stop();
      await Promise.race([done, new Promise((r) => setTimeout(r, deadlineMs).unref())]);
    },
    async close() {
      const done = stop();
      server.closeAllConnections();
      await done;
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    pragma: 'no-cache',
    'x-content-type-options': 'nosniff',
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
