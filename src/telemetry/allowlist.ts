/**
 * What may leave the cluster: the metric families, per source, and for each
 * family the labels that are shipped as they are. Every other label is
 * dropped (and the samples that then coincide are aggregated) or, with
 * --telemetry-hash-labels, replaced by a keyed hash. The default below is
 * documented with its reasons in docs/telemetry-protocol.md ("What leaves the
 * cluster"); a test keeps the two in step. A file given with
 * --telemetry-allowlist replaces the default entirely.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { telemetryError } from './errors.js';

export type Source = 'scheduler' | 'gateway';
export const SOURCES: readonly Source[] = ['scheduler', 'gateway'];
export type Aggregate = 'sum' | 'min' | 'max';

export interface FamilyRule {
  /** Labels shipped verbatim: only labels whose values the code, not users, chooses. */
  readonly labels: readonly string[];
  /** How samples that coincide once labels are dropped are combined (default sum). */
  readonly aggregate: Aggregate;
}

export type Allowlist = Readonly<Record<Source, ReadonlyMap<string, FamilyRule>>>;

const rule = (labels: string[] = [], aggregate: Aggregate = 'sum'): FamilyRule => ({ labels, aggregate });

/** The default. Reasons per family are in docs/telemetry-protocol.md. */
export const DEFAULT_ALLOWLIST: Allowlist = {
  scheduler: new Map<string, FamilyRule>([
    ['dask_scheduler_clients', rule()],
    ['dask_scheduler_desired_workers', rule()],
    ['dask_scheduler_workers', rule(['state'])],
    ['dask_scheduler_tasks', rule(['state'])],
    ['dask_scheduler_tasks_suspicious_total', rule()],
    ['dask_scheduler_tasks_forgotten_total', rule()],
    ['dask_scheduler_prefix_state_totals_total', rule(['state'])],
    ['dask_scheduler_tick_duration_maximum_seconds', rule([], 'max')],
    ['dask_scheduler_tick_count_total', rule()],
    ['dask_stealing_request_count_total', rule()],
    ['dask_stealing_request_cost_total', rule()],
    ['process_resident_memory_bytes', rule()],
    ['process_virtual_memory_bytes', rule()],
    ['process_cpu_seconds_total', rule()],
    ['process_open_fds', rule()],
    ['process_max_fds', rule()],
    ['process_start_time_seconds', rule([], 'min')],
  ]),
  gateway: new Map<string, FamilyRule>([
    ['scheduler_gateway_connections_active', rule(['port', 'role'])],
    ['scheduler_gateway_connection_limit', rule(['port'], 'min')],
    ['scheduler_gateway_connections_total', rule(['port', 'role'])],
    ['scheduler_gateway_tls_handshake_duration_seconds', rule(['port'])],
    ['scheduler_gateway_refusals_total', rule(['port', 'reason'])],
    ['scheduler_gateway_bytes_total', rule(['port', 'direction'])],
    ['scheduler_gateway_policy_denials_total', rule(['role', 'rule'])],
    ['scheduler_gateway_wire_errors_total', rule(['code'])],
    ['scheduler_gateway_dashboard_requests_total', rule(['status'])],
    ['scheduler_gateway_dashboard_websockets_open', rule()],
    ['scheduler_gateway_upstream_errors_total', rule(['upstream', 'kind'])],
    ['scheduler_gateway_reloads_total', rule(['what', 'result'])],
    ['scheduler_gateway_certificate_expiry_seconds', rule([], 'min')],
    ['scheduler_gateway_revocations_applied_total', rule(['kind'])],
    ['scheduler_gateway_input_rejected_total', rule(['surface', 'reason'])],
    ['scheduler_gateway_telemetry_spool_batches', rule()],
    ['scheduler_gateway_telemetry_spool_bytes', rule()],
    ['scheduler_gateway_telemetry_spool_oldest_age_seconds', rule([], 'max')],
    ['scheduler_gateway_telemetry_spool_dropped_total', rule(['reason'])],
    ['scheduler_gateway_telemetry_spool_recovered_total', rule(['kind'])],
    ['scheduler_gateway_telemetry_stream_lag_seconds', rule([], 'max')],
    ['scheduler_gateway_telemetry_batches_total', rule(['outcome'])],
    ['scheduler_gateway_telemetry_stream_errors_total', rule(['reason'])],
    ['scheduler_gateway_scheduler_scrape_errors_total', rule()],
    ['scheduler_gateway_control_commands_total', rule(['type', 'result'])],
    ['scheduler_gateway_credential_fetches_total', rule(['result'])],
    ['scheduler_gateway_credentials_expiration_timestamp_seconds', rule(['provider'], 'min')],
    ['scheduler_gateway_log_lines_dropped_total', rule()],
    ['scheduler_gateway_memory_budget_evictions_total', rule()],
    ['scheduler_gateway_token_store_errors_total', rule(['code'])],
    ['scheduler_gateway_dataplane_restarts_total', rule()],
    ['scheduler_gateway_process_resident_memory_bytes', rule()],
    ['scheduler_gateway_nodejs_eventloop_lag_p99_seconds', rule([], 'max')],
    ['scheduler_gateway_process_cpu_seconds_total', rule()],
    ['scheduler_gateway_process_open_fds', rule()],
    ['scheduler_gateway_process_start_time_seconds', rule([], 'min')],
  ]),
};

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]{0,99}$/;
const AGGREGATES: readonly string[] = ['sum', 'min', 'max'];

/**
 * Validates an allowlist document: {scheduler: {family: {labels, aggregate}}, gateway: {...}}.
 * One bad entry rejects the file, at startup.
 */
export function parseAllowlist(doc: unknown, file: string): Allowlist {
  const bad = (reason: string) => telemetryError('badAllowlist', { file, reason });
  if (!isObject(doc)) throw bad('expected a mapping with keys scheduler and gateway');
  for (const k of Object.keys(doc)) if (!(SOURCES as string[]).includes(k)) throw bad(`unknown key ${JSON.stringify(k)} (expected scheduler, gateway)`);
  const out = { scheduler: new Map<string, FamilyRule>(), gateway: new Map<string, FamilyRule>() };
  for (const source of SOURCES) {
    const fams = doc[source];
    if (fams === undefined || fams === null) continue;
    if (!isObject(fams)) throw bad(`${source}: expected a mapping of metric families`);
    for (const [name, body] of Object.entries(fams)) {
      if (!NAME.test(name)) throw bad(`${source}: invalid metric family name ${JSON.stringify(name)}`);
      const spec = body === null || body === undefined ? {} : body;
      if (!isObject(spec)) throw bad(`${source}.${name}: expected a mapping with labels and aggregate`);
      for (const k of Object.keys(spec)) if (k !== 'labels' && k !== 'aggregate' && k !== 'reason') throw bad(`${source}.${name}: unknown key ${JSON.stringify(k)}`);
      const labels = spec['labels'] ?? [];
      if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string' && LABEL.test(l))) throw bad(`${source}.${name}.labels: expected a list of label names`);
      const aggregate = spec['aggregate'] ?? 'sum';
      if (typeof aggregate !== 'string' || !AGGREGATES.includes(aggregate)) throw bad(`${source}.${name}.aggregate: expected sum, min or max`);
      out[source].set(name, rule(labels as string[], aggregate as Aggregate));
    }
  }
  return out;
}

export function loadAllowlist(file: string | undefined): Allowlist {
  if (file === undefined) return DEFAULT_ALLOWLIST;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw telemetryError('badAllowlist', { file, reason: `cannot read: ${(e as NodeJS.ErrnoException).code ?? 'error'}` });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { logLevel: 'error', maxAliasCount: 50 });
  } catch (e) {
    throw telemetryError('badAllowlist', { file, reason: `not YAML or JSON: ${(e as Error).message.split('\n')[0]}` });
  }
  return parseAllowlist(doc, file);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
