/** Error codes of the 8787 dashboard proxy (GW_DASHBOARD_*). */
import { defineErrors } from '../errors/base.js';

export const dashboardError = defineErrors({
  tlsPair: { code: 'GW_DASHBOARD_TLS_PAIR', message: '--dashboard-tls-cert and --dashboard-tls-key must be given together' },
  tlsFile: { code: 'GW_DASHBOARD_TLS_FILE', message: 'cannot use {file} for the dashboard certificate: {reason}' },
  listen: { code: 'GW_DASHBOARD_LISTEN', message: 'cannot listen on {address} for the dashboard: {reason}' },
  upstreamNotLoopback: { code: 'GW_DASHBOARD_UPSTREAM_NOT_LOOPBACK', message: '--dashboard-upstream must be a loopback address (127.0.0.0/8, ::1 or localhost), got {address}' },
  noCredentials: { code: 'GW_DASHBOARD_NO_LOGIN', message: 'the dashboard has no way to log in: there is no state directory for tokens.db (--dir, or --state-dir with --tls-*) and --dashboard-client-cert-auth is off' },
});
