/** Keys of the 8787 dashboard proxy (src/dashboard). */
import { DASHBOARD_DEFAULT_PORT } from '../../pki/validity.js';
import { key, parse, type SliceOf } from '../spec.js';

export const dashboardKeys = {
  enabled: key({
    key: 'dashboard.enabled', flag: 'dashboard', placeholder: 'BOOL', boolean: true,
    describe: 'serve the Dask dashboard over HTTPS (--dashboard=false turns port 8787 off)', default: true, parse: parse.bool,
  }),
  listen: key({
    key: 'dashboard.listen', flag: 'dashboard-listen', placeholder: 'ADDR',
    describe: 'address of the HTTPS dashboard proxy', default: { host: '0.0.0.0', port: DASHBOARD_DEFAULT_PORT }, parse: parse.endpoint(),
  }),
  upstream: key({
    key: 'dashboard.upstream', flag: 'dashboard-upstream', placeholder: 'ADDR',
    describe: "the scheduler's own dashboard on loopback (start the scheduler with --dashboard-address 127.0.0.1:8788)",
    default: { host: '127.0.0.1', port: 8788 }, parse: parse.endpoint(),
  }),
  tlsCert: key({
    key: 'dashboard.tls-cert', flag: 'dashboard-tls-cert', placeholder: 'PATH',
    describe: "PEM certificate chain for 8787 (e.g. publicly trusted) instead of the cluster's gateway certificate", path: 'file', parse: parse.optionalString,
  }),
  tlsKey: key({
    key: 'dashboard.tls-key', flag: 'dashboard-tls-key', placeholder: 'PATH',
    describe: 'unencrypted PEM private key for --dashboard-tls-cert (mode 0600)', path: 'file', parse: parse.optionalString,
  }),
  clientCertAuth: key({
    key: 'dashboard.client-cert-auth', flag: 'dashboard-client-cert-auth', placeholder: 'BOOL', boolean: true,
    describe: 'also accept a client or admin certificate of the cluster (browser .p12) as a dashboard login', default: false, parse: parse.bool,
  }),
  sessionTtl: key({
    key: 'dashboard.session-ttl', flag: 'session-ttl', placeholder: 'SECONDS',
    describe: 'lifetime of a browser session cookie (never beyond the token expiry)', default: 8 * 3600, parse: parse.int(60, 7 * 86_400),
  }),
  maxWebSocketsPerIdentity: key({
    key: 'dashboard.max-websockets-per-identity', flag: 'max-websockets-per-identity', placeholder: 'N',
    describe: 'open WebSockets one token or certificate may hold at once', default: 64, parse: parse.int(1, 10_000),
  }),
  maxConnections: key({
    key: 'dashboard.max-connections', flag: 'dashboard-max-connections', placeholder: 'N',
    describe: 'open connections on the dashboard port, handshaking ones included (lowered at start to what the open-files limit backs)', default: 512, parse: parse.int(1, 1_000_000),
  }),
  maxConnectionsPerAddress: key({
    key: 'dashboard.max-connections-per-address', flag: 'dashboard-max-connections-per-address', placeholder: 'N',
    describe: 'open connections on the dashboard port from one source address (IPv6: one /64)', default: 64, parse: parse.int(1, 1_000_000),
  }),
};

export type DashboardConfig = SliceOf<typeof dashboardKeys>;
