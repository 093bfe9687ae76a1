/** Keys of port 8786: where it listens, where the scheduler is, and its limits. */
import { parse, type KeySpec } from '../spec.js';

const env = (k: string) => `SCHEDULER_GATEWAY_${k.toUpperCase().replace(/[.-]/g, '_')}`;

export const terminatorKeys: KeySpec[] = [
  { key: 'listen', flag: 'listen', env: env('listen'), placeholder: 'HOST:PORT', describe: 'address of the mutual-TLS Dask port', default: { host: '0.0.0.0', port: 8786 }, parse: parse.endpoint() },
  { key: 'scheduler', flag: 'scheduler', env: env('scheduler'), placeholder: 'HOST:PORT|PATH', describe: 'the Dask scheduler on loopback (TCP or a Unix socket path); omitted: start an embedded development scheduler', parse: parse.endpoint({ allowUnix: true }) },
  { key: 'terminator.handshake-timeout-ms', flag: 'handshake-timeout-ms', env: env('handshake_timeout_ms'), placeholder: 'MS', describe: 'time from accept to an authenticated peer before the socket is closed', default: 10_000, parse: parse.int(100, 600_000) },
  { key: 'terminator.max-connections', flag: 'max-connections', env: env('max_connections'), placeholder: 'N', describe: 'concurrent connections on the Dask port, handshaking ones included (lowered at start to what the open-files limit backs: 2 descriptors each, 256 spare)', default: 4096, parse: parse.int(1, 1_000_000) },
  { key: 'terminator.failed-handshake-rate', flag: 'failed-handshake-rate', env: env('failed_handshake_rate'), placeholder: 'N', describe: 'failed handshakes per minute from one source address before it is refused', default: 60, parse: parse.int(1, 1_000_000) },
  { key: 'terminator.upstream-connect-timeout-ms', flag: 'upstream-connect-timeout-ms', env: env('upstream_connect_timeout_ms'), placeholder: 'MS', describe: 'how long to wait for the scheduler to accept a connection', default: 5_000, parse: parse.int(50, 120_000) },
  { key: 'terminator.drain-timeout-ms', flag: 'drain-timeout-ms', env: env('drain_timeout_ms'), placeholder: 'MS', describe: 'on SIGTERM, how long open connections may continue before they are closed', default: 30_000, parse: parse.int(0, 3_600_000) },
  { key: 'terminator.idle-timeout-ms', flag: 'idle-timeout', env: env('idle_timeout'), placeholder: 'MS', describe: 'close a connection silent this long (0: never; Dask connections are long-lived)', default: 0, parse: parse.int(0, 86_400_000) },
];
