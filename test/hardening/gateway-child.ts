/**
 * The gateway as its own process, for faults that need a real process
 * (SIGKILL, restart, rlimits) and for the soak: 8786 (startGateway), 8787
 * (startDashboard) and telemetry (startTelemetry) on one context, exactly as
 * `run` will compose them. Flags come as one JSON object in argv[2]; the
 * passphrase in SCHEDULER_GATEWAY_PASSPHRASE. Log lines go to stdout; once
 * listening it prints {"event":"child_ready",...ports}. SIGTERM drains and exits.
 *
 * Spawn with spawnGatewayChild() (hardening/child.ts), not directly.
 */
import { resolveConfig, type Flags } from '../../src/config/load.js';
import { runKeys } from '../../src/config/keys/index.js';
import { startGateway } from '../../src/gateway/compose.js';
import { startDashboard } from '../../src/dashboard/index.js';
import { startTelemetry } from '../../src/telemetry/telemetry.js';
import { createLogger } from '../../src/log/logger.js';

const flags = JSON.parse(process.argv[2] ?? '{}') as Flags;
const log = createLogger({ stream: process.stdout, level: 'info' });
const config = resolveConfig(runKeys, { flags, env: {} });
const gw = await startGateway(config, { log, env: process.env, trustPollMs: 250 });
const dashboard = await startDashboard(gw.context);
const telemetry = await startTelemetry(gw.context, { backoff: { baseMs: 200, capMs: 1000 }, connectTimeoutMs: 2000, ackTimeoutMs: 5000 });
process.stdout.write(JSON.stringify({
  event: 'child_ready', pid: process.pid,
  p8786: gw.addresses.terminator!.port, p8787: dashboard.address?.port, metrics: telemetry.address?.port,
}) + '\n');

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void (async () => {
    await dashboard.drain(1000);
    await Promise.allSettled([gw.drain(1000), telemetry.drain(1000)]);
    await Promise.allSettled([dashboard.close(), gw.close(), telemetry.close()]);
    process.exit(0);
  })();
});
