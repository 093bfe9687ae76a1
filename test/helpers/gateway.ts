/**
 * A gateway started in-process for tests: listens on 127.0.0.1:0 in front of
 * a given scheduler endpoint, with a test cluster's state directory, logging
 * JSON lines into memory so tests can assert audit lines.
 *
 * Exports:
 *   startTestGateway({cluster, scheduler, config?, t?}) -> TestGateway
 *     .gw (RunningGateway) .port .address ('tls://127.0.0.1:<port>') .lines (parsed log lines)
 *     .audits(event?) .waitForLog(pred, timeoutMs) .close()
 *
 * SCHEDULER_GATEWAY_TEST_PROCESSES=N runs every such gateway with --processes N
 * unless the test sets it (a local look for differences; CI runs without it).
 */
import { createLogger } from '../../src/log/logger.js';
import { startGateway, type RunningGateway } from '../../src/gateway/compose.js';
import { resolveRunConfig } from '../../src/config/load.js';
import type { Flags } from '../../src/config/load.js';
import type { InspectorFactory } from '../../src/terminator/inspector.js';
import type { TestCluster } from './pki.js';
import { waitFor } from './wait.js';
import { jsonLineSink } from './json-lines.js';

export type LogLine = Record<string, unknown> & { event: string; level: string };

export interface TestGateway {
  readonly gw: RunningGateway;
  readonly port: number;
  readonly address: string;
  readonly lines: LogLine[];
  audits(event?: string): LogLine[];
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  readonly cluster: TestCluster;
  /** "127.0.0.1:PORT" or a Unix socket path. */
  readonly scheduler: string;
  /** Extra flags, e.g. {'handshake-timeout-ms': '500'}. */
  readonly flags?: Flags;
  readonly inspector?: InspectorFactory;
  readonly t?: { teardown(fn: () => unknown): void };
  /** Echo log lines to stderr (debugging). */
  readonly echo?: boolean;
  /** Stands in for the process's open-files limit. */
  readonly openFilesLimit?: () => number | undefined;
}

export async function startTestGateway(o: TestGatewayOptions): Promise<TestGateway> {
  const lines: LogLine[] = [];
  const sink = jsonLineSink((raw, parsed) => {
    if (o.echo) process.stderr.write(raw + '\n');
    if (parsed) lines.push(parsed as LogLine);
  });
  const flags: Flags = { dir: o.cluster.dir, listen: '127.0.0.1:0', 'dashboard-listen': '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0', scheduler: o.scheduler, 'log-level': 'debug', ...(process.env.SCHEDULER_GATEWAY_TEST_PROCESSES ? { processes: process.env.SCHEDULER_GATEWAY_TEST_PROCESSES } : {}), ...o.flags };
  const config = resolveRunConfig({ flags, env: {} });
  const gw = await startGateway(config, {
    log: createLogger({ stream: sink, level: 'debug' }),
    env: { SCHEDULER_GATEWAY_PASSPHRASE: o.cluster.passphrase },
    trustPollMs: 250,
    ...(o.inspector ? { inspector: o.inspector } : {}),
    ...(o.openFilesLimit ? { openFilesLimit: o.openFilesLimit } : {}),
  });
  const port = gw.addresses.terminator!.port;
  const tg: TestGateway = {
    gw,
    port,
    address: `tls://127.0.0.1:${port}`,
    lines,
    audits: (event) => lines.filter((l) => l.level === 'audit' && (event === undefined || l.event === event)),
    waitForLog: (pred, timeoutMs = 15_000, what = 'log line') => waitFor(() => lines.find(pred), { timeoutMs, what }),
    close: () => gw.close(),
  };
  o.t?.teardown(() => gw.close());
  return tg;
}
