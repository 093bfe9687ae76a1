// The contenders: each terminates mutual TLS 1.3 on 127.0.0.1 (except
// "direct", the plain-TCP limit) and forwards to the bench backend. Each is
// started fresh per axis by start(env) -> { port, proc, processes, threads }.
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { CLUSTER } from './certs.mjs';
import { gcHook, withGc } from './gc.mjs';
import { freePort, processTree, startProcess, threadCount, waitForPort, waitForWorkers } from './proc.mjs';

/**
 * haproxy as Debian ships it to its users: the TLS lines of the packaged
 * /etc/haproxy/haproxy.cfg (Mozilla "intermediate": its suite order and
 * no-tls-tickets), threads left at the default (one per CPU), no tune.*.
 * Only TLS 1.3 is allowed, as for every contender. BENCH_HAPROXY_GLOBAL adds
 * global lines (';'-separated) for A/B runs, e.g. "nbthread 1".
 */
function haproxyConfig({ port, backendPort, certs, maxConns }) {
  return `global
  maxconn ${maxConns}
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
${(process.env.BENCH_HAPROXY_GLOBAL ?? '').split(';').filter(Boolean).map((l) => `  ${l.trim()}\n`).join('')}defaults
  mode tcp
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend bench
  bind 127.0.0.1:${port} ssl crt ${certs.combined} ca-file ${certs.ca} verify required ssl-min-ver TLSv1.3
  default_backend scheduler
backend scheduler
  server s1 127.0.0.1:${backendPort}
`;
}

function stunnelConfig({ port, backendPort, certs }) {
  return `foreground = yes
pid =
debug = 3
[bench]
accept = 127.0.0.1:${port}
connect = 127.0.0.1:${backendPort}
cert = ${certs.gw.cert}
key = ${certs.gw.key}
CAfile = ${certs.ca}
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
socket = a:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
`;
}

/**
 * Arguments of `scheduler-gateway run` in bring-your-own-PEM mode. processes 'auto' forks one data-plane worker
 * per core (the product as deployed on this machine); 1 passes no flag, so it also runs builds without
 * --processes. BENCH_GATEWAY_ARGS appends more.
 */
export function gatewayArgs({ port, backendPort, certs, inspect, maxConns, processes = 1 }) {
  const extra = (process.env.BENCH_GATEWAY_ARGS ?? '').split(' ').filter(Boolean);
  return [
    'run',
    ...(processes === 1 ? [] : ['--processes', String(processes)]),
    '--tls-ca', certs.ca,
    '--tls-cert', certs.gw.cert,
    '--tls-key', certs.gw.key,
    '--cluster', CLUSTER,
    '--listen', `127.0.0.1:${port}`,
    '--scheduler', `127.0.0.1:${backendPort}`,
    `--inspect=${inspect ? 'true' : 'false'}`,
    // The default (4096) is below the 10,000-connection memory step; haproxy gets the same maxconn.
    '--max-connections', String(maxConns),
    // One load generator is one address and one client identity: the per-source abuse limits (256 connections per
    // identity, 1,024 per address, 32 handshakes in flight per address, a quarter of the slots kept for workers)
    // would refuse the memory steps, so they are opened to the same cap (their checks still run on every connection).
    '--max-connections-per-identity', String(maxConns),
    '--max-connections-per-address', String(maxConns),
    '--max-handshakes-per-address', '128',
    '--reserve-workers-percent', '0',
    // Only port 8786 is under test: no dashboard, and /metrics on a free loopback port so runs never collide.
    '--dashboard=false',
    '--metrics-listen', '127.0.0.1:0',
    // Stopped between axes with nothing open; a short drain keeps that (and --cpu-prof's write at exit) quick.
    '--drain-timeout-ms', '2000',
    ...extra,
  ];
}

/** Starts a contender and waits until it accepts on port, and until all its `workers` worker processes listen. */
async function launch(name, cmd, args, env, port, { workers = 0, ...extra } = {}) {
  const proc = startProcess(`${name}-${env.tag}`, cmd, args, { logDir: env.logs, ...extra });
  try {
    await waitForPort(port, { proc, timeoutMs: 30000 });
    if (workers) await waitForWorkers(proc, port, workers);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return { port, proc, processes: processTree(proc.pid).length, threads: threadCount(proc.pid) };
}

/** The gateway's entry point; BENCH_GATEWAY_BIN points at another build (e.g. a before/after comparison). */
function gatewayEntry(env) {
  return process.env.BENCH_GATEWAY_BIN ?? join(env.root, 'dist/cli/bin.js');
}

/**
 * Where --cpu-prof writes: <name>-<tag>.cpuprofile, or for a multi-process gateway (its workers inherit the
 * flags, and Node 20 has no pid placeholder for --cpu-prof-name) one default-named profile per process in a
 * directory <name>-<tag>/ (see cpuprofile.mjs).
 */
function cpuProfileTarget(env, name, workers) {
  const base = `${name}-${env.tag}`;
  return workers ? ['--cpu-prof-dir', join(env.profileDir, base)] : ['--cpu-prof-dir', env.profileDir, '--cpu-prof-name', `${base}.cpuprofile`];
}

/** Worker processes `--processes` asks for: auto is one per core, at most the gateway's 64. */
const workerCount = (processes) => (processes === 'auto' ? Math.min(64, os.availableParallelism()) : processes);

function gateway(name, { inspect, processes }) {
  const workers = processes === 1 ? 0 : workerCount(processes);
  return {
    name,
    tls: true,
    available: (env) => existsSync(gatewayEntry(env)) || `${gatewayEntry(env)} missing (npm run build)`,
    async start(env) {
      const port = await freePort();
      const nodeFlags = env.profileDir
        ? ['--cpu-prof', '--cpu-prof-interval', '250', ...cpuProfileTarget(env, name, workers), '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${env.profileDir}`]
        : [];
      const hook = gcHook(env, name);
      const args = [...nodeFlags, ...hook.flags, gatewayEntry(env), ...gatewayArgs({ ...env, port, inspect, processes })];
      // gateway-1p must stay one process whatever the bench's own environment says.
      const procEnv = { ...hook.env, SCHEDULER_GATEWAY_PROCESSES: undefined };
      return withGc(await launch(name, process.execPath, args, env, port, { cwd: env.work, env: procEnv, workers }), hook.file);
    },
  };
}

export const CONTENDERS = {
  direct: {
    name: 'direct',
    tls: false,
    available: () => true,
    async start(env) {
      return { port: env.backendPort, proc: null };
    },
  },
  haproxy: {
    name: 'haproxy',
    tls: true,
    available: (env) => (env.bin.haproxy ? true : 'haproxy not installed'),
    async start(env) {
      const port = await freePort();
      const cfg = join(env.work, `haproxy-${env.tag}.cfg`);
      writeFileSync(cfg, haproxyConfig({ ...env, port }));
      return launch('haproxy', env.bin.haproxy, ['-db', '-f', cfg], env, port);
    },
  },
  stunnel: {
    name: 'stunnel',
    tls: true,
    available: (env) => (env.bin.stunnel ? true : 'stunnel not installed'),
    async start(env) {
      const port = await freePort();
      const cfg = join(env.work, `stunnel-${env.tag}.conf`);
      writeFileSync(cfg, stunnelConfig({ ...env, port }));
      return launch('stunnel', env.bin.stunnel, [cfg], env, port);
    },
  },
  'node-baseline': {
    name: 'node-baseline',
    tls: true,
    available: () => true,
    async start(env) {
      const port = await freePort();
      const script = join(env.root, 'bench/contenders/node-baseline.mjs');
      const { certs } = env;
      const hook = gcHook(env, 'node-baseline');
      const args = [...hook.flags, script, String(port), String(env.backendPort), certs.ca, certs.gw.cert, certs.gw.key];
      return withGc(await launch('node-baseline', process.execPath, args, env, port, { env: hook.env }), hook.file);
    },
  },
  'gateway-1p': gateway('gateway-1p', { inspect: false, processes: 1 }),
  // The product as it would be deployed on this machine: the issue-17 targets are judged on these two.
  gateway: gateway('gateway', { inspect: false, processes: 'auto' }),
  'gateway-inspect': gateway('gateway-inspect', { inspect: true, processes: 'auto' }),
};

// stunnel is selectable (--contenders) but not in the default run: with gateway-1p and the multi-process
// gateways' start-up, three runs of every contender would not fit the 15-minute budget (bench/README.md).
export const DEFAULT_CONTENDERS = Object.keys(CONTENDERS).filter((c) => c !== 'stunnel');
