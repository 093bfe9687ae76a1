/**
 * External grading of both public ports with Debian's testssl.sh and sslscan
 * against a gateway started here. The parsed reports are kept under
 * test/artifacts/ (tls-grade-<port>.json) for the closing note.
 *
 * 8786 requires a client certificate for anything to be forwarded, but the
 * TLS handshake itself completes without one (the terminator refuses after
 * it, to audit the reason), so testssl 3.0 (which has no --mtls) grades the
 * full handshake; sslscan is given a cluster client certificate
 * (--certs/--pk). The failed-handshake rate limit is lifted for the grader:
 * otherwise its hundreds of certificate-less probes would be refused at
 * accept and read as "not offered".
 *
 * Nothing is excepted: any MEDIUM, HIGH or CRITICAL finding fails. The
 * gateway certificate names a CRL Distribution Point served by 8787 itself
 * (https://localhost:8787/gateway/crl.pem for this test cluster), which is
 * what keeps testssl's cert_revocation from being rated HIGH.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { startBothPorts, startEcho, startHttpUpstream } from './harness.js';

t.setTimeout(480_000);

const ARTIFACTS = resolve(import.meta.dirname, '..', 'artifacts');
const AEAD = /(GCM|CHACHA20|CCM)/;
const FORWARD_SECRET = /^(TLS_|ECDHE-|DHE-)/;

interface Finding { id: string; severity: string; finding: string }

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    p.on('exit', (code) => { clearTimeout(timer); done({ code, out }); });
  });
}

async function testssl(port: number, caPath: string, http: boolean, work: string): Promise<Finding[]> {
  const json = join(work, `testssl-${port}.json`);
  rmSync(json, { force: true });
  const checks = ['-p', '-s', '-f', '-P', '-S', '-U', ...(http ? ['-h'] : [])];
  const r = await run('testssl', ['--quiet', '--color', '0', '--warnings', 'off', '--fast', '--connect-timeout', '10', '--openssl-timeout', '10',
    '--add-ca', caPath, ...checks, '--jsonfile', json, `127.0.0.1:${port}`], 400_000);
  let parsed: Finding[];
  try {
    parsed = JSON.parse(readFileSync(json, 'utf8')) as Finding[];
  } catch {
    throw new Error(`testssl produced no JSON (exit ${r.code}):\n${r.out.slice(-3000)}`);
  }
  return parsed.map(({ id, severity, finding }) => ({ id, severity, finding }));
}

/** compression: undefined when sslscan's OpenSSL cannot test it (Debian's is built without zlib); testssl's CRIME check covers it. */
interface SslscanReport { protocols: Record<string, boolean>; ciphers: Array<{ version: string; cipher: string }>; renegotiation: boolean; compression: boolean | undefined }

async function sslscan(port: number, client?: { cert: string; key: string }): Promise<SslscanReport> {
  const r = await run('sslscan', ['--no-colour', '--xml=-', ...(client ? [`--certs=${client.cert}`, `--pk=${client.key}`] : []), `127.0.0.1:${port}`], 120_000);
  const xml = r.out;
  const protocols: Record<string, boolean> = {};
  for (const m of xml.matchAll(/<protocol type="(\w+)" version="([\d.]+)" enabled="(\d)"/g)) protocols[`${m[1]}${m[2]}`] = m[3] === '1';
  const ciphers = [...xml.matchAll(/<cipher status="(?:accepted|preferred)" sslversion="([^"]+)"[^>]* cipher="([^"]+)"/g)].map((m) => ({ version: m[1]!, cipher: m[2]! }));
  const reneg = /<renegotiation supported="(\d)"/.exec(xml);
  const comp = /<compression supported="(\d)"/.exec(xml);
  if (Object.keys(protocols).length === 0 || !reneg) throw new Error(`sslscan output not understood:\n${xml.slice(0, 3000)}`);
  return { protocols, ciphers, renegotiation: reneg[1] === '1', compression: comp ? comp[1] === '1' : undefined };
}

const missing = ['testssl', 'sslscan'].filter((c) => !have(c));
if (missing.length > 0) {
  t.fail(`missing ${missing.join(', ')} (apt-get install testssl.sh sslscan)`);
} else {
  const echo = await startEcho(t);
  const up = await startHttpUpstream(t);
  const gw = await startBothPorts({ t, scheduler: `127.0.0.1:${echo.port}`, dashboardUpstreamPort: up.port, flags: { 'failed-handshake-rate': '1000000' } });
  const client = await gw.cluster.issue('client', 'grader');
  const work = join(tmpdir(), `sgw-grade-${process.pid}`);
  mkdirSync(work, { recursive: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  const ports = [
    { name: '8786', port: gw.port8786, http: false, client: { cert: client.certPath, key: client.keyPath } },
    { name: '8787', port: gw.port8787, http: true, client: undefined },
  ];
  // Both graders of both ports at once: the run is bound by testssl's round trips, not CPU.
  const reports = await Promise.all(ports.map(async (p) => {
    const [findings, scan] = await Promise.all([testssl(p.port, gw.cluster.caPath, p.http, work), sslscan(p.port, p.client)]);
    const medium = findings.filter((f) => /^(MEDIUM|HIGH|CRITICAL)$/.test(f.severity));
    const summary = {
      port: p.name, graded_at: new Date().toISOString(),
      testssl: { medium_or_worse: medium, findings },
      sslscan: scan,
    };
    writeFileSync(join(ARTIFACTS, `tls-grade-${p.name}.json`), JSON.stringify(summary, null, 2));
    return { ...p, findings, scan, medium };
  }));

  for (const r of reports) {
    t.test(`port ${r.name}: testssl.sh finds nothing MEDIUM or worse`, async (t) => {
      const byId = new Map(r.findings.map((f) => [f.id, f]));
      t.ok(r.findings.length > 50, `testssl ran its checks (${r.findings.length} findings)`);
      t.same(r.medium, [], 'no MEDIUM, HIGH or CRITICAL finding');
      t.match(byId.get('cert_crlDistributionPoints')?.finding ?? '', /https:\/\/localhost:8787\/gateway\/crl\.pem/, 'the certificate names its CRL Distribution Point');
      t.notOk(byId.has('cert_revocation'), 'no cert_revocation finding (testssl emits it only when neither CRL nor OCSP URI is given)');
      for (const v of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) t.match(byId.get(v)?.finding ?? '', /not offered/, `${v} not offered`);
      t.match(byId.get('TLS1_2')?.finding ?? '', /offered/, 'TLS 1.2 offered');
      t.match(byId.get('TLS1_3')?.finding ?? '', /offered/, 'TLS 1.3 offered');
      for (const v of ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA', 'cipherlist_AVERAGE']) {
        t.match(byId.get(v)?.finding ?? '', /not offered/, `${v} not offered (no CBC, no weak suites)`);
      }
      t.match(byId.get('PFS')?.finding ?? '', /offered/, 'forward secrecy offered');
      t.equal(byId.get('cert_chain_of_trust')?.severity, 'OK', 'the chain verifies against the cluster CA');
      t.match(byId.get('CRIME_TLS')?.finding ?? '', /not vulnerable/, 'no TLS compression (CRIME)');
      t.match(byId.get('secure_renego')?.finding ?? '', /supported|not vulnerable/i, 'RFC 5746 secure renegotiation indication');
      if (r.http) t.match(byId.get('secure_client_renego')?.finding ?? '', /not vulnerable/, 'client-initiated renegotiation refused');
      for (const id of ['heartbleed', 'CCS', 'ROBOT', 'POODLE_SSL', 'SWEET32', 'FREAK', 'DROWN', 'LOGJAM', 'BEAST', 'LUCKY13']) {
        t.notMatch(byId.get(id)?.severity ?? 'missing', /MEDIUM|HIGH|CRITICAL|missing/, `${id}: not vulnerable`);
      }
    });

    t.test(`port ${r.name}: sslscan sees only TLS 1.2/1.3, AEAD suites with forward secrecy, no renegotiation`, async (t) => {
      const s = r.scan;
      t.same({ ssl2: s.protocols.ssl2, ssl3: s.protocols.ssl3, tls10: s.protocols['tls1.0'], tls11: s.protocols['tls1.1'] },
        { ssl2: false, ssl3: false, tls10: false, tls11: false }, 'SSLv2, SSLv3, TLS 1.0, TLS 1.1 disabled');
      t.equal(s.protocols['tls1.2'], true, 'TLS 1.2 enabled');
      t.equal(s.protocols['tls1.3'], true, 'TLS 1.3 enabled');
      t.ok(s.ciphers.some((c) => c.version === 'TLSv1.2'), 'TLS 1.2 suites enumerated');
      t.same(s.ciphers.filter((c) => !AEAD.test(c.cipher)), [], 'every accepted suite is AEAD');
      t.same(s.ciphers.filter((c) => !FORWARD_SECRET.test(c.cipher)), [], 'every accepted suite has forward secrecy (ECDHE or TLS 1.3)');
      t.equal(s.renegotiation, false, 'renegotiation not supported');
      if (s.compression !== undefined) t.equal(s.compression, false, 'no TLS compression');
      else t.comment('sslscan cannot test compression here; the testssl CRIME check above proves it is off');
    });
  }
}
