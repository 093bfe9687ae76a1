/**
 * `scheduler-gateway telemetry preview`: prints the next batch exactly as the
 * running gateway would send it, built by the same code (settings, scrape,
 * parser, privacy filter, batch encoder). The gateway's own samples come from
 * its --metrics-listen endpoint; if no gateway is running there, a fresh
 * registry stands in (all counters zero) and stderr says so.
 */
import type { CliIo } from './io.js';
import { parseArgs, type FlagDecl } from './args.js';
import { resolveRunConfig, runSources } from '../config/load.js';
import { runKeys } from '../config/keys/index.js';
import { formatEndpoint, type Endpoint } from '../config/spec.js';
import { silentLogger } from '../log/logger.js';
import { readState } from '../pki/records.js';
import { createMetrics } from '../runtime/metrics.js';
import { Collector, batchMessage, encodeBatch } from '../telemetry/collector.js';
import { parsePrometheusText, type Sample } from '../telemetry/prom-parse.js';
import { registrySamples } from '../telemetry/registry-samples.js';
import { scrapeText } from '../telemetry/scrape.js';
import { peekNextSeq } from '../telemetry/spool.js';
import { loadHashKey, telemetrySettings } from '../telemetry/telemetry.js';

const FLAGS: FlagDecl[] = [...runKeys.map((k) => ({ flag: k.flag, boolean: k.boolean ?? false, repeatable: k.repeatable ?? false })), { flag: 'pretty', boolean: true }, { flag: 'help', boolean: true }];

const USAGE = `usage: scheduler-gateway telemetry preview [--dir DIR] [--config FILE] [--pretty] [any option of 'run']

Prints the next telemetry batch exactly as it would be sent (without its
gzip), with the same configuration as 'run'. Nothing is sent or spooled.
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, FLAGS);
  if (flags.help || positionals[0] !== 'preview' || positionals.length !== 1) {
    io[flags.help ? 'stdout' : 'stderr'].write(USAGE);
    return flags.help ? 0 : 2;
  }
  const config = resolveRunConfig(runSources(flags, io.env, io.cwd));
  const dir = config.common.dir;
  const clusterId = config.common.cluster ?? readState(dir).clusterId;
  const s = telemetrySettings(config.telemetry, { stateDir: dir, dashboardUpstream: config.dashboard.upstream });
  const now = new Date();
  const gatewaySamples = await ownSamples(s.metricsListen, io);
  const collector = new Collector({
    gatewaySamples: async () => gatewaySamples,
    schedulerUrl: s.schedulerUrl,
    scrapeIntervalMs: s.scrapeIntervalMs,
    scrapeTimeoutMs: 5000,
    scrapeMaxBytes: 4 * 1024 * 1024,
    allowlist: s.allowlist,
    hashKey: s.hashLabels ? loadHashKey(dir) : undefined,
    metrics: createMetrics({ defaultMetrics: false }),
    log: silentLogger,
    now: () => now,
  });
  await collector.scrapeOnce();
  const collected = await collector.collect();
  if (!collected.scheduler.ok) io.stderr.write(`telemetry preview: scheduler metrics not included: ${collected.scheduler.error}\n`);
  const seq = s.spoolDir ? await peekNextSeq(s.spoolDir, now) : 1;
  const msg = batchMessage(clusterId, seq, now, collected);
  io.stdout.write((flags.pretty ? JSON.stringify(msg, null, 2) : encodeBatch(msg, false).toString('utf8')) + '\n');
  return 0;
}

async function ownSamples(listen: Endpoint | undefined, io: CliIo): Promise<readonly Sample[]> {
  if (listen?.host !== undefined) {
    const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
    let text: string | undefined;
    try {
      text = await scrapeText(new URL(`http://${formatEndpoint({ host, port: listen.port })}/metrics`), { timeoutMs: 3000, maxBytes: 4 * 1024 * 1024 });
    } catch {
      // fall through: no gateway running there
    }
    // Another process's text: the strict parser reads it, as it reads the scheduler's.
    if (text !== undefined) return parsePrometheusText(text).samples;
  }
  io.stderr.write(`telemetry preview: no gateway answering on ${listen ? formatEndpoint(listen) : '(metrics endpoint off)'}; its own counters are shown as a fresh gateway's\n`);
  return registrySamples(createMetrics().registry);
}
