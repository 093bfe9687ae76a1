/**
 * The reference control-plane receiver (`control-plane-dev`): HTTPS + WSS
 * only, one WebSocket per gateway on /v1/stream. It authenticates the cluster
 * credential before the upgrade, validates every batch, stores it (UNIQUE
 * (cluster, seq) makes redelivery harmless), and acknowledges only after the
 * transaction has committed. Commands queued in the database are signed and
 * delivered to the connected cluster, re-signed on every delivery attempt,
 * until the gateway reports a result.
 *
 * This folder is the development control plane, not part of the daemon:
 * receiver.ts (the server), receiver-db.ts (its SQLite database), dev-cert.ts
 * (its development CA and certificate). Only cli/control-plane-dev.ts imports
 * it; it shares telemetry/protocol.ts with the gateway.
 */
import { createServer, type Server } from 'node:https';
import { gunzipSync } from 'node:zlib';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../log/logger.js';
import type { Endpoint } from '../config/spec.js';
import { ReceiverDb, type StoredSample } from './receiver-db.js';
import { CLUSTER_HEADER, STREAM_PATH, SUBPROTOCOL, signCommand } from '../telemetry/protocol.js';

export interface ReceiverFaults {
  /** Answer the n-th, 2n-th... batch with a nack. */
  readonly nackEvery?: number;
  /** Close the connection instead of acking the n-th, 2n-th... batch (after storing it). */
  readonly dropEvery?: number;
  /** Delay every ack by this long. */
  readonly ackDelayMs?: number;
}

export interface ReceiverOptions {
  readonly listen: Endpoint;
  readonly db: ReceiverDb;
  readonly certPem: string;
  readonly keyPem: string;
  readonly log: Logger;
  readonly commandPollMs?: number;
  /** For tests and demos of failure handling. */
  readonly faults?: ReceiverFaults;
}

export interface Receiver {
  readonly port: number;
  /** Connected cluster ids. */
  connected(): string[];
  close(): Promise<void>;
}

const MAX_BATCH_BYTES = 16 * 1024 * 1024;
const MAX_SAMPLES = 200_000;

export async function startReceiver(o: ReceiverOptions): Promise<Receiver> {
  const { db, log } = o;
  const live = new Map<string, WebSocket>();
  const server: Server = createServer({ cert: o.certPem, key: o.keyPem, minVersion: 'TLSv1.2' }, (_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('scheduler-gateway control-plane-dev: WebSocket on ' + STREAM_PATH + '\n');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BATCH_BYTES, perMessageDeflate: false });
  // Every socket, upgraded or not, so close() ends them all and never waits on a reconnecting gateway.
  const sockets = new Set<Socket>();
  let closing = false;
  server.on('connection', (sock: Socket) => {
    if (closing) return void sock.destroy();
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
  });
  let received = 0;

  server.on('upgrade', (req, socket, head) => {
    const refuse = (status: number, why: string) => {
      log.warn('receiver_refused', { status, why, remote: req.socket.remoteAddress });
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    if ((req.url ?? '').split('?')[0] !== STREAM_PATH) return refuse(400, 'wrong path');
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!protocols.includes(SUBPROTOCOL)) return refuse(400, 'missing subprotocol');
    const cluster = String(req.headers[CLUSTER_HEADER] ?? '');
    const auth = /^Bearer (\S+)$/.exec(String(req.headers['authorization'] ?? ''));
    const credential = auth ? db.authenticate(cluster, auth[1]!) : undefined;
    if (!credential) return refuse(401, 'bad credential');
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, cluster, credential));
  });

  function onConnection(ws: WebSocket, cluster: string, credential: string): void {
    live.get(cluster)?.terminate(); // one stream per cluster: the newest wins
    live.set(cluster, ws);
    const sent = new Set<string>();
    log.info('receiver_connected', { cluster });
    const deliver = () => {
      if (ws.readyState !== ws.OPEN) return;
      for (const c of db.pendingCommands(cluster)) {
        if (sent.has(c.id)) continue;
        sent.add(c.id);
        ws.send(JSON.stringify(signCommand(credential, { id: c.id, cluster, issued: new Date().toISOString(), name: c.name, args: c.args })));
        log.info('receiver_command_sent', { cluster, command_id: c.id, command: c.name });
      }
    };
    const safeDeliver = () => {
      try {
        deliver();
      } catch (e) {
        log.error('receiver_command_delivery_failed', { cluster, problem: (e as Error).message });
      }
    };
    const poll = setInterval(safeDeliver, o.commandPollMs ?? 200);
    safeDeliver();
    ws.on('close', () => {
      clearInterval(poll);
      if (live.get(cluster) === ws) live.delete(cluster);
      log.info('receiver_disconnected', { cluster });
    });
    ws.on('error', () => ws.terminate());
    ws.on('message', (data: Buffer, isBinary) => {
      let text: string;
      try {
        text = isBinary ? gunzipSync(data, { maxOutputLength: 4 * MAX_BATCH_BYTES }).toString('utf8') : data.toString('utf8');
      } catch {
        return ws.close(1007, 'bad gzip');
      }
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return ws.close(1007, 'not JSON');
      }
      if (msg['type'] === 'command-result') {
        try {
          if (typeof msg['id'] === 'string') db.completeCommand(cluster, msg['id'], msg['ok'] === true, JSON.stringify(msg));
        } catch (e) {
          // Left pending: it is delivered again on the next connection and answered as a duplicate.
          log.error('receiver_command_record_failed', { cluster, problem: (e as Error).message });
        }
        log.info('receiver_command_result', { cluster, command_id: msg['id'], ok: msg['ok'], error: msg['error'] });
        return;
      }
      if (msg['type'] !== 'batch') return ws.close(1008, 'unknown message type');
      const seq = msg['seq'];
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return ws.close(1008, 'bad seq');
      const problem = checkBatch(msg, cluster);
      if (problem) {
        ws.send(JSON.stringify({ type: 'nack', seq, error: problem }));
        return;
      }
      received++;
      if (o.faults?.nackEvery && received % o.faults.nackEvery === 0) {
        ws.send(JSON.stringify({ type: 'nack', seq, error: 'injected fault' }));
        return;
      }
      let stored: boolean;
      try {
        stored = db.storeBatch(cluster, seq, msg['created'] as string, text, msg['samples'] as StoredSample[]);
      } catch (e) {
        log.error('receiver_store_failed', { cluster, seq, problem: (e as Error).message });
        ws.send(JSON.stringify({ type: 'nack', seq, error: 'storage failure' }));
        return;
      }
      if (o.faults?.dropEvery && received % o.faults.dropEvery === 0) return void ws.terminate();
      const ack = () => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'ack', seq, ...(stored ? {} : { duplicate: true }) }));
      if (o.faults?.ackDelayMs) setTimeout(ack, o.faults.ackDelayMs);
      else ack();
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After listen, an error (EMFILE at accept, ...) is an event to log, never a crash.
  server.on('error', (e: NodeJS.ErrnoException) => log.error('receiver_server_error', { code: e.code, error: e }));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.listen.port!;
  log.info('receiver_listening', { port });
  return {
    port,
    connected: () => [...live.keys()],
    close: () => new Promise<void>((resolve) => {
      closing = true;
      for (const ws of live.values()) ws.terminate();
      wss.close();
      server.close(() => resolve());
      for (const sock of sockets) sock.destroy();
    }),
  };
}

/** A batch that is not well-formed is refused (nack), never stored. */
function checkBatch(msg: Record<string, unknown>, cluster: string): string | undefined {
  if (msg['v'] !== 1) return 'unsupported batch version';
  if (msg['cluster'] !== cluster) return 'batch cluster does not match the credential';
  if (typeof msg['created'] !== 'string' || Number.isNaN(Date.parse(msg['created']))) return 'bad created time';
  const samples = msg['samples'];
  if (!Array.isArray(samples) || samples.length > MAX_SAMPLES) return 'samples must be an array';
  for (const s of samples as unknown[]) {
    if (!s || typeof s !== 'object') return 'sample is not an object';
    const r = s as Record<string, unknown>;
    if (typeof r['source'] !== 'string' || typeof r['name'] !== 'string') return 'sample without source or name';
    if (typeof r['value'] !== 'number' && !['NaN', '+Inf', '-Inf'].includes(r['value'] as string)) return 'sample value is not a number';
    const labels = r['labels'];
    if (!labels || typeof labels !== 'object' || Array.isArray(labels) || !Object.values(labels).every((v) => typeof v === 'string')) return 'sample labels must map names to strings';
  }
  return undefined;
}
