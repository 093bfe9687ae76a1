/** Keys of port 8786: where it listens, where the scheduler is, and its limits. */
import { availableParallelism } from 'node:os';
import { key, parse, type SliceOf } from '../spec.js';
import { DESCRIPTOR_RESERVE, DESCRIPTORS_PER_CONNECTION } from '../../limits/descriptor-budget.js';

/** More processes than this would each hold too few slots to matter, and the primary answers them all. */
const MAX_PROCESSES = 64;

function processes(raw: unknown, k: string): number {
  return raw === 'auto' ? Math.min(MAX_PROCESSES, availableParallelism()) : parse.int(1, MAX_PROCESSES)(raw, k);
}

export const terminatorKeys = {
  listen: key({ key: 'listen', flag: 'listen', placeholder: 'HOST:PORT', describe: 'address of the mutual-TLS Dask port', default: { host: '0.0.0.0', port: 8786 }, parse: parse.endpoint() }),
  scheduler: key({ key: 'scheduler', flag: 'scheduler', placeholder: 'HOST:PORT|PATH', describe: 'the Dask scheduler on loopback (TCP or a Unix socket path); omitted: start an embedded development scheduler', parse: parse.endpoint({ allowUnix: true }) }),
  handshakeTimeoutMs: key({ key: 'terminator.handshake-timeout-ms', flag: 'handshake-timeout-ms', placeholder: 'MS', describe: 'time from accept to an authenticated peer before the socket is closed', default: 10_000, parse: parse.int(100, 600_000) }),
  maxConnections: key({ key: 'terminator.max-connections', flag: 'max-connections', placeholder: 'N', describe: `concurrent connections on the Dask port, handshaking ones included (lowered at start to what the open-files limit backs: ${DESCRIPTORS_PER_CONNECTION.terminator} descriptors each, ${DESCRIPTOR_RESERVE} spare)`, default: 4096, parse: parse.int(1, 1_000_000) }),
  failedHandshakeRate: key({ key: 'terminator.failed-handshake-rate', flag: 'failed-handshake-rate', placeholder: 'N', describe: 'failed handshakes per minute from one source address before it is refused', default: 60, parse: parse.int(1, 1_000_000) }),
  upstreamConnectTimeoutMs: key({ key: 'terminator.upstream-connect-timeout-ms', flag: 'upstream-connect-timeout-ms', placeholder: 'MS', describe: 'how long to wait for the scheduler to accept a connection', default: 5_000, parse: parse.int(50, 120_000) }),
  drainTimeoutMs: key({ key: 'terminator.drain-timeout-ms', flag: 'drain-timeout-ms', placeholder: 'MS', describe: 'on SIGTERM, how long open connections may continue before they are closed', default: 30_000, parse: parse.int(0, 3_600_000) }),
  idleTimeoutMs: key({ key: 'terminator.idle-timeout-ms', flag: 'idle-timeout', placeholder: 'MS', describe: 'close a request connection silent this long (0: never); Dask streams (worker, client) are never cut for silence', default: 600_000, parse: parse.int(0, 86_400_000) }),
  maxHandshakes: key({ key: 'terminator.max-handshakes', flag: 'max-handshakes', placeholder: 'N', describe: 'connections in their TLS handshake at once, all addresses (at most a quarter of --max-connections)', default: 256, parse: parse.int(1, 100_000) }),
  maxHandshakesPerAddress: key({ key: 'terminator.max-handshakes-per-address', flag: 'max-handshakes-per-address', placeholder: 'N', describe: 'connections in their TLS handshake at once from one source address (IPv6: one /64)', default: 32, parse: parse.int(1, 100_000) }),
  maxConnectionsPerAddress: key({ key: 'terminator.max-connections-per-address', flag: 'max-connections-per-address', placeholder: 'N', describe: 'connections from one source address, handshaking ones included (raise it for many workers behind one NAT)', default: 1024, parse: parse.int(1, 1_000_000) }),
  maxConnectionsPerIdentity: key({ key: 'terminator.max-connections-per-identity', flag: 'max-connections-per-identity', placeholder: 'N', describe: 'live connections of one certificate (SPIFFE URI); a worker or client holds a handful', default: 256, parse: parse.int(1, 1_000_000) }),
  reserveWorkersPercent: key({ key: 'terminator.reserve-workers-percent', flag: 'reserve-workers-percent', placeholder: 'PCT', describe: 'share of --max-connections that client certificates can never take (kept for workers and admins)', default: 25, parse: parse.int(0, 50) }),
  reserveClientsPercent: key({ key: 'terminator.reserve-clients-percent', flag: 'reserve-clients-percent', placeholder: 'PCT', describe: 'share of --max-connections that worker and admin certificates can never take (kept for clients)', default: 10, parse: parse.int(0, 50) }),
  processes: key({ key: 'terminator.processes', flag: 'processes', placeholder: 'N|auto', describe: `data-plane processes that accept and forward 8786 connections, sharing every limit (auto: one per CPU core, at most ${MAX_PROCESSES}; 1: the whole gateway is one process)`, default: 1, parse: processes }),
  memoryBudgetBytes: key({ key: 'terminator.memory-budget-bytes', flag: 'memory-budget-bytes', placeholder: 'BYTES', describe: 'bytes buffered for peers across all 8786 connections (partial frame 0, TLS data, queued writes); when spent, the holders stop being read', default: 256 * 1024 * 1024, parse: parse.int(1024 * 1024, 2 ** 40) }),
};

export type TerminatorConfig = SliceOf<typeof terminatorKeys>;
