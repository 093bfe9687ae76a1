/**
 * The gateway's Prometheus endpoint (default 127.0.0.1:9464). It has no
 * authentication, so it binds loopback unless the operator opts in with
 * --metrics-listen-unsafe-public.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsReader } from '../runtime/metrics.js';
import type { Logger } from '../log/logger.js';
import type { Endpoint } from '../config/spec.js';
import { formatEndpoint } from '../config/spec.js';
import { telemetryError } from './errors.js';
import { isLoopbackHost } from '../config/loopback.js';

export async function renderMetrics(reader: MetricsReader): Promise<{ contentType: string; body: string }> {
  return { contentType: reader.contentType, body: await reader.metrics() };
}

export interface MetricsServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export async function startMetricsServer(o: { listen: Endpoint; unsafePublic: boolean; reader: MetricsReader; log: Logger }): Promise<MetricsServer> {
  const { listen } = o;
  if (listen.path !== undefined) throw telemetryError('badEndpoint', { key: '--metrics-listen', reason: 'expected HOST:PORT' });
  if (!isLoopbackHost(listen.host) && !o.unsafePublic) {
    throw telemetryError('badEndpoint', { key: '--metrics-listen', reason: `${formatEndpoint(listen)} is not loopback; the endpoint is unauthenticated: pass --metrics-listen-unsafe-public to expose it` });
  }
  const server: Server = createServer(async (req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      const { contentType, body } = await renderMetrics(o.reader);
      res.writeHead(200, { 'content-type': contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      o.log.error('telemetry_metrics_render_failed', { error: e });
      res.writeHead(500, { 'content-type': 'text/plain' }).end('error\n');
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.maxHeadersCount = 50;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(telemetryError('badEndpoint', { key: '--metrics-listen', reason: `cannot listen on ${formatEndpoint(listen)}: ${e.code ?? e.message}` })));
    server.listen(listen.port, listen.host, () => resolve());
  });
  // After listen, an error (EMFILE at accept, ...) is an event to log, never a crash.
  server.on('error', (e: NodeJS.ErrnoException) => o.log.error('telemetry_metrics_server_error', { code: e.code, error: e }));
  const address = server.address() as AddressInfo;
  o.log.info('telemetry_metrics_listening', { address: formatEndpoint({ host: address.address, port: address.port }) });
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
