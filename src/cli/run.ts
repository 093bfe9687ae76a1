/**
 * `scheduler-gateway run`: resolve configuration (cross-flag rules first),
 * start the embedded development scheduler when no --scheduler is given,
 * start the gateway, then wait for signals. SIGHUP reloads the TLS
 * material (ignored while draining); SIGTERM/SIGINT drain and exit. Every
 * way out goes through one function so the exit code and the order of
 * shutdown are decided in one place.
 */
import type { CliIo } from './io.js';
import { parseArgs } from './args.js';
import { GatewayError } from '../errors/base.js';
import { helpTable, presentFlags, resolveRunConfig, runSources } from '../config/load.js';
import { runKeys } from '../config/keys/index.js';
import { createLogger } from '../log/logger.js';
import { checkCrossFlagRules } from '../gateway/settings.js';
import { startGateway } from '../gateway/compose.js';
import { startEmbeddedScheduler, type EmbeddedScheduler } from '../supervisor/embedded.js';

const USAGE = `usage: scheduler-gateway run [--config FILE] (--dir DIR | --tls-ca F --tls-cert F --tls-key F [--tls-crl F] --cluster ID)
                              --scheduler HOST:PORT|PATH [--listen HOST:PORT] [options]
       scheduler-gateway run --dev [--dir DIR] [--dask-python PATH] [options]

--dev (development only) runs a Dask scheduler on loopback with a development PKI
in --dir: it mints certificates, writes their unencrypted keys
under DIR/issued and keeps the passphrase beside the keys, and prints how to
connect. It refuses a directory that holds a production CA.

Relative paths are taken from the working directory; in a --config file, from
the file's directory.

options:
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, [...runKeys, { flag: 'help', boolean: true }]);
  if (flags.help) {
    io.stdout.write(`${USAGE}${helpTable(runKeys)}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new GatewayError('GW_USAGE', `unexpected argument '${positionals[0]}' (see run --help)`);
  const sources = runSources(flags, io.env, io.cwd);
  const present = presentFlags(runKeys, sources);
  checkCrossFlagRules(present);
  let config = resolveRunConfig(sources);
  const log = createLogger({ stream: io.stdout, level: config.common.logLevel, batch: true });

  let embedded: EmbeddedScheduler | undefined;
  const { dev, python } = config.supervisor;
  if (dev && config.terminator.scheduler !== undefined) throw new GatewayError('GW_USAGE', '--dev starts its own development scheduler: give --scheduler or --dev, not both');
  if (config.terminator.scheduler === undefined) {
    if (!dev) throw new GatewayError('GW_USAGE', 'no --scheduler: pass --scheduler HOST:PORT (your Dask scheduler on loopback), or --dev for a local development scheduler with a development PKI');
    if (config.common.tlsCert !== undefined) throw new GatewayError('GW_USAGE', '--tls-cert excludes --dev: the development scheduler uses its own development PKI');
    // From the environment it is set aside with a warning (dev-pki.ts): a shell may hold it for another directory.
    if (presentFlags(runKeys, { ...sources, env: {} }).has('passphrase-file')) throw new GatewayError('GW_USAGE', '--passphrase-file excludes --dev: the development PKI keeps its passphrase beside its keys (.dev-passphrase)');
    embedded = await startEmbeddedScheduler({ dir: config.common.dir, env: io.env, log, python });
    // The 8787 proxy follows the embedded scheduler's dashboard unless told otherwise.
    const upstream = present.has('dashboard-upstream') ? config.dashboard.upstream : { host: '127.0.0.1', port: embedded.dashboardPort };
    config = {
      ...config,
      common: { ...config.common, passphraseFile: embedded.bundles.passphraseFile },
      terminator: { ...config.terminator, scheduler: embedded.scheduler },
      dashboard: { ...config.dashboard, upstream },
    };
  }

  let gw;
  try {
    gw = await startGateway(config, { log, env: io.env });
  } catch (e) {
    await embedded?.stop();
    throw e;
  }
  if (embedded) {
    const addr = gw.addresses.terminator!;
    const host = addr.address === '0.0.0.0' || addr.address === '::' ? '127.0.0.1' : addr.address;
    io.stderr.write(embedded.instructions(host, addr.port, gw.addresses.dashboard?.port));
    if (gw.addresses.dashboard) embedded.linkDashboard(gw.addresses.dashboard.port);
  }
  return waitForSignals(gw, embedded, log);
}

function waitForSignals(
  gw: Awaited<ReturnType<typeof startGateway>>,
  embedded: EmbeddedScheduler | undefined,
  log: ReturnType<typeof createLogger>,
): Promise<number> {
  return new Promise((resolve) => {
    let draining = false;
    const onHup = () => {
      if (draining) return log.info('signal_ignored', { signal: 'SIGHUP', why: 'draining' });
      log.info('reload_requested', { signal: 'SIGHUP' });
      void gw.reload('SIGHUP').then((ok) => log.info('reload_finished', { signal: 'SIGHUP', ok }));
    };
    const onStop = (signal: NodeJS.Signals) => {
      if (draining) {
        log.warn('signal_during_drain', { signal, action: 'closing now' });
        void gw.close().then(() => exit(1));
        return;
      }
      draining = true;
      log.info('draining', { signal, deadline_ms: gw.settings.drainTimeoutMs });
      void gw.drain().then(() => exit(0), () => exit(1));
    };
    const onTerm = () => onStop('SIGTERM');
    const onInt = () => onStop('SIGINT');
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);

    let exiting = false;
    // The one way out: stop the scheduler we started, release the signals, report the code.
    function exit(code: number): void {
      if (exiting) return;
      exiting = true;
      void (embedded?.stop() ?? Promise.resolve()).finally(() => {
        process.off('SIGHUP', onHup);
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        log.info('exit', { code });
        // A handle someone forgot must not keep a drained gateway alive.
        setTimeout(() => process.exit(code), 2_000).unref();
        resolve(code);
      });
    }
  });
}
