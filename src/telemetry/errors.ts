/**
 * Every error the telemetry layer throws, declared once (codes GW_TELEMETRY_*).
 * Messages name the input at fault so a log line or CLI error is enough to act on.
 */
import { defineErrors } from '../errors/base.js';

export const telemetryError = defineErrors({
  /** The scheduler's /metrics body (or the gateway's own) is not valid Prometheus text format. */
  promParse: { code: 'GW_TELEMETRY_PROM_PARSE', message: 'metrics text line {line}: {reason}' },
  /** The metrics body exceeds a bound (bytes, lines, samples, labels). */
  promTooLarge: { code: 'GW_TELEMETRY_PROM_TOO_LARGE', message: 'metrics text exceeds the limit: {reason}' },
  /** Scraping the scheduler's /metrics failed (network, status, timeout, size). */
  scrapeFailed: { code: 'GW_TELEMETRY_SCRAPE_FAILED', message: 'scrape of {url} failed: {reason}' },
  /** The telemetry allowlist file is unreadable or has the wrong shape. */
  badAllowlist: { code: 'GW_TELEMETRY_BAD_ALLOWLIST', message: 'telemetry allowlist {file}: {reason}' },
  /** A spool operation failed (disk full, permissions). */
  spoolIo: { code: 'GW_TELEMETRY_SPOOL_IO', message: 'telemetry spool {dir}: {reason}' },
  /** The control-plane credential file is missing, unreadable or empty. */
  badCredential: { code: 'GW_TELEMETRY_BAD_CREDENTIAL', message: 'control-plane credential {file}: {reason}' },
  /** A control-plane URL or listen address refused by policy (not https/wss, or non-loopback without the unsafe flag). */
  badEndpoint: { code: 'GW_TELEMETRY_BAD_ENDPOINT', message: '{key}: {reason}' },
  /** A command from the control plane that fails verification or cannot be applied. */
  commandRejected: { code: 'GW_TELEMETRY_COMMAND_REJECTED', message: 'control-plane command rejected: {reason}' },
});
