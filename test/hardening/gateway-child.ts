/**
 * The gateway as its own process, for faults that need a real process
 * (SIGKILL, restart, rlimits) and for the soak: startGateway, which composes
 * 8786, 8787, credentials and telemetry exactly as `run` does. Flags come as
 * one JSON object in argv[2]; the
 * passphrase in SCHEDULER_GATEWAY_PASSPHRASE. Log lines go to stdout; once
 * listening it prints {"event":"child_ready",...ports}. SIGTERM drains and exits.
 *
 * Spawn with spawnGatewayChild() (hardening/child.ts), not directly.
 */
import { resolveRunConfig, type Flags } from '../../src/config/load.js';
import { startGateway } from '../../src/gateway/compose.js';
import { createLogger } from '../../src/log/logger.js';

const flags = JSON.parse(process.argv[2] ?? '{}') as Flags;
const log = createLogger({ stream: process.stdout, level: 'info', batch: true }); // as `run` does
const config = resolveRunConfig({ flags, env: {} });
const gw = await startGateway(config, { log, env: process.env, trustPollMs: 250 });
process.stdout.write(JSON.stringify({
  event: 'child_ready', pid: process.pid,
  p8786: gw.addresses.terminator!.port, p8787: gw.addresses.dashboard?.port, p8789: gw.addresses.credentials?.port, metrics: gw.addresses.metrics?.port,
}) + '\n');

// Tests that measure memory given back ask for a full collection first: an idle process never collects on its own.
process.on('SIGUSR2', () => {
  for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
  process.stdout.write(JSON.stringify({ event: 'child_gc', ...process.memoryUsage() }) + '\n');
});

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void gw.drain(1000).finally(() => process.exit(0));
});
