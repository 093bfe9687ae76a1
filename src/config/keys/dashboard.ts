/** Keys of the 8787 dashboard proxy (src/dashboard). */
import { parse, type KeySpec } from '../spec.js';

const env = (k: string) => `SCHEDULER_GATEWAY_${k.toUpperCase().replace(/[-.]/g, '_')}`;

export const dashboardKeys: KeySpec[] = [
  {
    key: 'dashboard.enabled', flag: 'dashboard', env: env('dashboard'), placeholder: 'BOOL', boolean: true,
    describe: 'serve the Dask dashboard over HTTPS (--dashboard=false turns port 8787 off)', default: true, parse: parse.bool,
  },
  {
    key: 'dashboard.listen', flag: 'dashboard-listen', env: env('dashboard-listen'), placeholder: 'ADDR',
    describe: 'address of the HTTPS dashboard proxy', default: { host: '0.0.0.0', port: 8787 }, parse: parse.endpoint(),
  },
  {
    key: 'dashboard.upstream', flag: 'dashboard-upstream', env: env('dashboard-upstream'), placeholder: 'ADDR',
    describe: "the scheduler's own dashboard on loopback (start the scheduler with --dashboard-address 127.0.0.1:8788)",
    default: { host: '127.0.0.1', port: 8788 }, parse: parse.endpoint(),
  },
  {
    key: 'dashboard.tls-cert', flag: 'dashboard-tls-cert', env: env('dashboard-tls-cert'), placeholder: 'PATH',
    describe: "PEM certificate chain for 8787 (e.g. publicly trusted) instead of the cluster's gateway certificate", parse: parse.optionalString,
  },
  {
    key: 'dashboard.tls-key', flag: 'dashboard-tls-key', env: env('dashboard-tls-key'), placeholder: 'PATH',
    describe: 'unencrypted PEM private key for --dashboard-tls-cert (mode 0600)', parse: parse.optionalString,
  },
  {
    key: 'dashboard.client-cert-auth', flag: 'dashboard-client-cert-auth', env: env('dashboard-client-cert-auth'), placeholder: 'BOOL', boolean: true,
    describe: 'also accept a client or admin certificate of the cluster (browser .p12) as a dashboard login', default: false, parse: parse.bool,
  },
  {
    key: 'dashboard.session-ttl', flag: 'session-ttl', env: env('session-ttl'), placeholder: 'SECONDS',
    describe: 'lifetime of a browser session cookie (never beyond the token expiry)', default: 8 * 3600, parse: parse.int(60, 7 * 86_400),
  },
  {
    key: 'dashboard.max-websockets-per-identity', flag: 'max-websockets-per-identity', env: env('max-websockets-per-identity'), placeholder: 'N',
    describe: 'open WebSockets one token or certificate may hold at once', default: 64, parse: parse.int(1, 10_000),
  },
  {
    key: 'dashboard.max-connections', flag: 'dashboard-max-connections', env: env('dashboard-max-connections'), placeholder: 'N',
    describe: 'open connections on the dashboard port, handshaking ones included (lowered at start to what the open-files limit backs)', default: 512, parse: parse.int(1, 1_000_000),
  },
  {
    key: 'dashboard.max-connections-per-address', flag: 'dashboard-max-connections-per-address', env: env('dashboard-max-connections-per-address'), placeholder: 'N',
    describe: 'open connections on the dashboard port from one source address (IPv6: one /64)', default: 64, parse: parse.int(1, 1_000_000),
  },
];
