/** Keys of the metrics endpoint, the scheduler scrape, the spool and the control-plane stream (src/telemetry). */
import { configError, key, parse, type SliceOf } from '../spec.js';

/** "15s", "200ms", "2m", or a bare number of seconds; result in milliseconds. */
export function parseDuration(min: number, max: number) {
  return (raw: unknown, key: string): number => {
    const s = typeof raw === 'number' ? `${raw}s` : String(raw).trim();
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s);
    const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'] : NaN;
    if (!Number.isFinite(ms) || ms < min || ms > max) throw configError(key, `expected a duration from ${min} ms to ${max / 1000} s (e.g. 15s, 500ms), got ${JSON.stringify(raw)}`);
    return Math.round(ms);
  };
}

export const telemetryKeys = {
  metricsListen: key({
    key: 'metrics.listen', flag: 'metrics-listen', placeholder: 'HOST:PORT',
    describe: "where the gateway's Prometheus /metrics is served (loopback unless --metrics-listen-unsafe-public)",
    default: { host: '127.0.0.1', port: 9464 }, parse: parse.endpoint(),
  }),
  metricsListenUnsafePublic: key({
    key: 'metrics.listen-unsafe-public', flag: 'metrics-listen-unsafe-public', placeholder: 'BOOL', boolean: true,
    describe: 'allow --metrics-listen on a non-loopback address (the endpoint has no authentication)', default: false, parse: parse.bool,
  }),
  controlPlane: key({
    key: 'control-plane.url', flag: 'control-plane', placeholder: 'URL',
    describe: 'the control plane to stream telemetry to (https:// or wss://, port 443 unless given); omitted: no stream', parse: parse.url(['https:', 'wss:']),
  }),
  controlPlaneCa: key({
    key: 'control-plane.ca', flag: 'control-plane-ca', placeholder: 'PATH',
    describe: "CA certificate(s) that must sign the control plane's certificate (default: the system CAs)", path: 'file', parse: parse.optionalString,
  }),
  controlPlaneCredential: key({
    key: 'control-plane.credential', flag: 'control-plane-credential', placeholder: 'PATH',
    describe: 'file holding the cluster credential for the control plane (sent as a bearer token, keys command signatures)', path: 'file', parse: parse.optionalString,
  }),
  interval: key({
    key: 'telemetry.interval', flag: 'telemetry-interval', placeholder: 'DURATION',
    describe: 'how often a telemetry batch is made', default: 15_000, parse: parseDuration(50, 3_600_000),
  }),
  scrapeInterval: key({
    key: 'telemetry.scrape-interval', flag: 'scrape-interval', placeholder: 'DURATION',
    describe: "how often the scheduler's /metrics is scraped", default: 15_000, parse: parseDuration(50, 3_600_000),
  }),
  schedulerMetricsUrl: key({
    key: 'telemetry.scheduler-metrics-url', flag: 'scheduler-metrics-url', placeholder: 'URL',
    describe: "the scheduler's Prometheus endpoint (default: /metrics on --dashboard-upstream)", parse: parse.url(['http:']),
  }),
  spoolDir: key({
    key: 'telemetry.spool-dir', flag: 'spool-dir', placeholder: 'PATH',
    describe: 'where unacknowledged batches wait (default: <state dir>/spool)', path: 'file', parse: parse.optionalString,
  }),
  spoolMaxBytes: key({
    key: 'telemetry.spool-max-bytes', flag: 'spool-max-bytes', placeholder: 'BYTES',
    describe: 'spool size cap; the oldest batches are dropped beyond it', default: 256 * 1024 * 1024, parse: parse.int(64 * 1024, 1024 ** 4),
  }),
  spoolMaxAgeDays: key({
    key: 'telemetry.spool-max-age-days', flag: 'spool-max-age-days', placeholder: 'DAYS',
    describe: 'batches older than this are dropped unsent (the retention documented for temporary metadata)', default: 30, parse: parse.number(0.0001, 3650),
  }),
  allowlist: key({
    key: 'telemetry.allowlist', flag: 'telemetry-allowlist', placeholder: 'PATH',
    describe: 'YAML/JSON file replacing the default list of metric families and labels that may leave the cluster', path: 'file', parse: parse.optionalString,
  }),
  hashLabels: key({
    key: 'telemetry.hash-labels', flag: 'telemetry-hash-labels', placeholder: 'BOOL', boolean: true,
    describe: 'replace non-allowlisted labels by a keyed hash instead of dropping them', default: false, parse: parse.bool,
  }),
  gzip: key({
    key: 'telemetry.gzip', flag: 'telemetry-gzip', placeholder: 'BOOL', boolean: true,
    describe: 'gzip batches on disk and on the wire (binary WebSocket frames)', default: false, parse: parse.bool,
  }),
};

export type TelemetryConfig = SliceOf<typeof telemetryKeys>;
