/**
 * The gateway's own metrics. Names are API: declared here once, never renamed.
 * Modules receive this object by injection; nothing else creates metrics.
 *
 * With several processes each has its own registry, and /metrics and the
 * control-plane stream carry their combination (metrics-aggregate.ts), made
 * per family by its `aggregator`. The rule: a family combines by sum unless
 * it says otherwise. Sum is right for counters and histograms, for gauges of
 * what each process holds (connections, slots, bytes buffered), for limits
 * each process sets to the share it enforces (connection_limit,
 * memory_budget_limit_bytes: the sum is the limit in force), and for
 * unlabelled gauges only the primary sets (spool, stream lag, websockets):
 * a process that never sets one reports 0. A labelled gauge that no process
 * or every process may set to the same fact (an expiry) combines by min:
 * a process that never sets it reports no series, so the min is the one
 * value, or the soonest when processes disagree (one still holding the old
 * certificate); a sum would multiply it and max would pick the stale one.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Port = '8786' | '8787' | 'credentials' | 'metrics';

/** What /metrics and telemetry read: one registry, or the combination of every process's (metrics-aggregate.ts). */
export type MetricsReader = Pick<Registry, 'contentType' | 'metrics' | 'getMetricsAsJSON'>;

/** prom-client omits the start time when combining; the gateway's start is its oldest process's. */
const START_TIME = 'scheduler_gateway_process_start_time_seconds';

export interface MetricsOptions {
  readonly defaultMetrics?: boolean;
  /** The logger's count of dropped lines (Logger#droppedLines), read at each scrape. */
  readonly logLinesDropped?: () => number;
}

export function createMetrics(opts: MetricsOptions = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry, prefix: 'scheduler_gateway_' });
    const start = registry.getSingleMetric(START_TIME);
    // prom-client reads `aggregator` off the metric object; its typings do not declare the field.
    if (start) Object.assign(start, { aggregator: 'min' });
  }
  const r = [registry];
  const m = {
    registry,
    connectionsActive: new Gauge({ name: 'scheduler_gateway_connections_active', help: 'Open authenticated connections', labelNames: ['port', 'role'] as const, registers: r }),
    connectionsTotal: new Counter({ name: 'scheduler_gateway_connections_total', help: 'Authenticated connections accepted', labelNames: ['port', 'role'] as const, registers: r }),
    handshakeSeconds: new Histogram({ name: 'scheduler_gateway_tls_handshake_duration_seconds', help: 'TLS handshake duration, accepted and refused', labelNames: ['port'] as const, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: r }),
    refusalsTotal: new Counter({ name: 'scheduler_gateway_refusals_total', help: 'Connections or requests refused, by reason', labelNames: ['port', 'reason'] as const, registers: r }),
    bytesTotal: new Counter({ name: 'scheduler_gateway_bytes_total', help: 'Bytes forwarded; direction in = from peer to scheduler', labelNames: ['port', 'direction'] as const, registers: r }),
    policyDenialsTotal: new Counter({ name: 'scheduler_gateway_policy_denials_total', help: 'Dask operations refused by policy', labelNames: ['role', 'op', 'rule'] as const, registers: r }),
    wireErrorsTotal: new Counter({ name: 'scheduler_gateway_wire_errors_total', help: 'Dask framing violations', labelNames: ['code'] as const, registers: r }),
    dashboardRequestsTotal: new Counter({ name: 'scheduler_gateway_dashboard_requests_total', help: 'Dashboard HTTP requests by status code', labelNames: ['status'] as const, registers: r }),
    websocketsOpen: new Gauge({ name: 'scheduler_gateway_dashboard_websockets_open', help: 'Open proxied WebSockets', registers: r }),
    dashboardDisconnectsTotal: new Counter({ name: 'scheduler_gateway_dashboard_disconnects_total', help: 'Dashboard exchanges ended by a browser or the upstream dashboard going away', labelNames: ['peer', 'stage'] as const, registers: r }),
    upstreamErrorsTotal: new Counter({ name: 'scheduler_gateway_upstream_errors_total', help: 'Failures reaching the scheduler or its dashboard', labelNames: ['upstream', 'kind'] as const, registers: r }),
    reloadsTotal: new Counter({ name: 'scheduler_gateway_reloads_total', help: 'Reloads of TLS material, revocations or policy', labelNames: ['what', 'result'] as const, registers: r }),
    certificateExpirySeconds: new Gauge({ name: 'scheduler_gateway_certificate_expiry_seconds', help: 'Seconds until each loaded certificate expires', labelNames: ['certificate'] as const, aggregator: 'min', registers: r }),
    revocationsAppliedTotal: new Counter({ name: 'scheduler_gateway_revocations_applied_total', help: 'Live sessions closed because their credential was revoked or expired', labelNames: ['kind'] as const, registers: r }),
    inputRejectedTotal: new Counter({ name: 'scheduler_gateway_input_rejected_total', help: 'Hostile or malformed input refused, by surface and reason', labelNames: ['surface', 'reason'] as const, registers: r }),
    spoolBatches: new Gauge({ name: 'scheduler_gateway_telemetry_spool_batches', help: 'Batches waiting in the telemetry spool', registers: r }),
    spoolBytes: new Gauge({ name: 'scheduler_gateway_telemetry_spool_bytes', help: 'Bytes in the telemetry spool', registers: r }),
    spoolOldestAgeSeconds: new Gauge({ name: 'scheduler_gateway_telemetry_spool_oldest_age_seconds', help: 'Age of the oldest unacknowledged batch', registers: r }),
    spoolDroppedTotal: new Counter({ name: 'scheduler_gateway_telemetry_spool_dropped_total', help: 'Batches dropped from the spool', labelNames: ['reason'] as const, registers: r }),
    streamLagSeconds: new Gauge({ name: 'scheduler_gateway_telemetry_stream_lag_seconds', help: 'Seconds between the newest batch and the newest acknowledgement', registers: r }),
    streamBatchesTotal: new Counter({ name: 'scheduler_gateway_telemetry_batches_total', help: 'Telemetry batches by outcome', labelNames: ['outcome'] as const, registers: r }),
    scrapeErrorsTotal: new Counter({ name: 'scheduler_gateway_scheduler_scrape_errors_total', help: 'Failed scrapes of the scheduler metrics endpoint', registers: r }),
    controlCommandsTotal: new Counter({ name: 'scheduler_gateway_control_commands_total', help: 'Commands received from the control plane', labelNames: ['type', 'result'] as const, registers: r }),
    credentialFetchesTotal: new Counter({ name: 'scheduler_gateway_credential_fetches_total', help: 'Cloud credential fetches by result', labelNames: ['result'] as const, registers: r }),
    streamErrorsTotal: new Counter({ name: 'scheduler_gateway_telemetry_stream_errors_total', help: 'Control-plane connection failures by reason (tls, auth, http, network, protocol, timeout)', labelNames: ['reason'] as const, registers: r }),
    spoolRecoveredTotal: new Counter({ name: 'scheduler_gateway_telemetry_spool_recovered_total', help: 'Spool files found torn or corrupt at startup and removed', labelNames: ['kind'] as const, registers: r }),
    tokenStoreErrorsTotal: new Counter({ name: 'scheduler_gateway_token_store_errors_total', help: 'Token database failures seen by the running gateway (full or read-only disk, ...), by error code', labelNames: ['code'] as const, registers: r }),
    credentialsExpirationSeconds: new Gauge({ name: 'scheduler_gateway_credentials_expiration_timestamp_seconds', help: 'Unix time at which the held cloud credential of each provider expires', labelNames: ['provider'] as const, aggregator: 'min', registers: r }),
    logLinesDroppedTotal: new Counter({ name: 'scheduler_gateway_log_lines_dropped_total', help: 'Log lines dropped because stdout did not take them (its reader stalled); each gap is marked by a log_lines_dropped line (log/logger.ts)', registers: r, collect() { this.reset(); this.inc(opts.logLinesDropped?.() ?? 0); } }),
    logLinesCoalescedTotal: new Counter({ name: 'scheduler_gateway_log_lines_coalesced_total', help: 'Refusal audit lines folded into a refusals_coalesced summary instead of being written (log/coalesce.ts)', labelNames: ['port'] as const, registers: r }),
    memoryBudgetUsedBytes: new Gauge({ name: 'scheduler_gateway_memory_budget_used_bytes', help: 'Bytes buffered for peers across all connections, counted against --memory-budget-bytes', registers: r }),
    memoryBudgetLimitBytes: new Gauge({ name: 'scheduler_gateway_memory_budget_limit_bytes', help: 'The memory budget in force (--memory-budget-bytes)', registers: r }),
    memoryBudgetPausedConnections: new Gauge({ name: 'scheduler_gateway_memory_budget_paused_connections', help: 'Connections not being read because the memory budget is spent', registers: r }),
    memoryBudgetEvictionsTotal: new Counter({ name: 'scheduler_gateway_memory_budget_evictions_total', help: 'Connections closed because the memory budget stayed spent (largest holders first)', registers: r }),
    connectionSlots: new Gauge({ name: 'scheduler_gateway_connection_slots', help: 'Slots of the Dask port in use: handshaking, and live by role class (client; cluster = worker and admin)', labelNames: ['state'] as const, registers: r }),
    connectionsReclaimedTotal: new Counter({ name: 'scheduler_gateway_connections_reclaimed_total', help: 'Idle request connections of the biggest holder closed so a certificate with fewer could connect (role share full)', labelNames: ['class'] as const, registers: r }),
    dataplaneRestartsTotal: new Counter({ name: 'scheduler_gateway_dataplane_restarts_total', help: 'Data-plane processes (--processes) that exited unexpectedly and were started again', registers: r }),
    connectionLimit: new Gauge({ name: 'scheduler_gateway_connection_limit', help: 'The connection cap in force on each port (after the open-files limit lowered it, if it did)', labelNames: ['port'] as const, registers: r }),
  };
  return m;
}

export type GatewayMetrics = ReturnType<typeof createMetrics>;
