// Reproduces the causes bench/FINDINGS.md gives for the old bench and the
// independent harness disagreeing. Uses the bench's own C tools, PKI and contenders.
//
//   node bench/repro/disagreement.mjs suites    # the TLS 1.3 suite each contender picks when the
//                                               # client offers OpenSSL's default list, and tickets sent
//   node bench/repro/disagreement.mjs haproxy [ROUNDS]
//       # interleaved A/B of haproxy as the old bench configured it (no suite list, tickets on; also with
//       # the client pinned to AES-128) against Debian's packaged TLS lines, and those with nbthread 1: handshake CPU and
//       # rate, 64 B p50, bulk CPU per GiB (ROUNDS 3 by default, at most 10)
// Loopback only; every load generator call is bounded by count and deadline.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureCerts } from '../lib/certs.mjs';
import { CONTENDERS } from '../lib/contenders.mjs';
import { cpuSeconds, freePort, runCommand, startProcess, stopAll, waitForPort } from '../lib/proc.mjs';
import { buildTools, ensurePrereqs } from '../lib/setup.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const work = join(root, 'bench/work');
const logs = join(work, 'logs', 'repro-disagreement');
mkdirSync(logs, { recursive: true });
const [what = 'suites', roundsArg = '3'] = process.argv.slice(2);
const tools = buildTools(root, join(work, 'bin'));
const certs = ensureCerts(join(work, 'certs'));
const bin = await ensurePrereqs(console.log);
const clientTls = ['--tls', '--ca', certs.ca, '--cert', certs.client.cert, '--key', certs.client.key];

async function loadgen(port, args) {
  const r = await runCommand(tools.loadgen, [...args, '--port', String(port), '--deadline', '40'], { timeoutMs: 60000 });
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const backend = startProcess('backend', tools.backend, ['0'], { logDir: logs });
const backendPort = await new Promise((resolve) => {
  let buf = '';
  backend.child.stdout.on('data', (d) => {
    buf += d;
    const m = /PORT (\d+)/.exec(buf);
    if (m) resolve(Number(m[1]));
  });
});
const env = { root, work, logs, certs, bin, maxConns: 3000, backendPort };

try {
  if (what === 'suites') await suites();
  else if (what === 'haproxy') await haproxyAB(Math.min(10, Number(roundsArg) || 3));
  else throw new Error('usage: disagreement.mjs suites | haproxy [ROUNDS]');
} finally {
  await stopAll();
}

async function suites() {
  for (const name of ['haproxy', 'stunnel', 'node-baseline', 'gateway']) {
    if (CONTENDERS[name].available(env) !== true) continue;
    const inst = await CONTENDERS[name].start({ ...env, tag: `suites-${name}` });
    for (const offer of [null, 'TLS_AES_128_GCM_SHA256']) {
      const o = await loadgen(inst.port, ['handshake', '--count', '200', '--seconds', '5', '--parallel', '4', ...clientTls, '--no-verify', ...(offer ? ['--ciphersuites', offer] : [])]);
      console.log(`${name.padEnd(14)} client offers ${(offer ?? "OpenSSL's default").padEnd(22)} -> ${o.cipher}, ${(o.tickets / o.tls_conns).toFixed(1)} tickets per handshake`);
    }
    await inst.proc.stop();
  }
}

const DEBIAN = ['ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256', 'ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets'];
const OLD = ['ssl-default-bind-options ssl-min-ver TLSv1.3'];
const PIN = ['--ciphersuites', 'TLS_AES_128_GCM_SHA256'];
// The client offers OpenSSL's default list, as the old bench's did, except where pinned.
const HAPROXY_VARIANTS = {
  'old bench': { global: OLD, offer: [] },
  'old bench, AES-128 client': { global: OLD, offer: PIN },
  debian: { global: DEBIAN, offer: [] },
  'debian nbthread 1': { global: [...DEBIAN, 'nbthread 1'], offer: [] },
};

function haproxyConfig(global, port) {
  return ['global', '  maxconn 3000', ...global.map((l) => `  ${l}`), 'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 600s', '  timeout server 600s',
    'frontend bench', `  bind 127.0.0.1:${port} ssl crt ${certs.combined} ca-file ${certs.ca} verify required ssl-min-ver TLSv1.3`, '  default_backend s',
    'backend s', `  server s1 127.0.0.1:${backendPort}`, ''].join('\n');
}

async function haproxyAB(rounds) {
  for (let i = 0; i < rounds; i++) {
    for (const [name, { global, offer }] of Object.entries(HAPROXY_VARIANTS)) {
      const port = await freePort();
      const cfg = join(work, `repro-haproxy-${name.replace(/ /g, '-')}.cfg`);
      writeFileSync(cfg, haproxyConfig(global, port));
      const h = startProcess(`haproxy-${i}`, bin.haproxy, ['-db', '-f', cfg], { logDir: logs });
      await waitForPort(port, { proc: h });
      const run = async (args) => {
        const c0 = cpuSeconds(h.pid);
        const o = await loadgen(port, [...args, ...clientTls, ...offer]);
        return { o, cpu: cpuSeconds(h.pid) - c0 };
      };
      const hs = await run(['handshake', '--count', '3000', '--seconds', '4', '--parallel', '8', '--no-verify']);
      const pp = await run(['pingpong', '--count', '5000', '--warmup', '1000']);
      const bk = await run(['bulk', '--bytes', String(256 * 2 ** 20)]);
      console.log(JSON.stringify({
        round: i + 1, haproxy: name, suite: hs.o.cipher, tickets_per_hs: hs.o.tickets / hs.o.tls_conns,
        hs_per_s: hs.o.per_s, cpu_ms_per_hs: +((hs.cpu * 1e3) / hs.o.count).toFixed(3),
        p50_us: pp.o.p50_us, bulk_mb_s: bk.o.mb_per_s, cpu_s_per_gib: +(bk.cpu / ((bk.o.bytes + bk.o.warm_bytes) / 2 ** 30)).toFixed(3),
      }));
      await h.stop();
    }
  }
}
