/**
 * Every parser the project owns, fed seeded hostile input at volume:
 * policy files, configuration (values and files through resolveRunConfig),
 * dashboard token strings through the token verifier, session cookies and
 * request targets, certificate/CRL/key PEM through the PKI loaders, SPIFFE
 * URIs and SAN strings, Prometheus text, spool records, control-plane
 * messages, and structure-aware (msgpack-level) Dask messages through the
 * full per-connection inspector (test/wire/fuzz.test.ts already covers the
 * byte-level frame parser and scanner with 100k random streams).
 *
 * Contract per target: return, or throw a GatewayError (a clean refusal
 * with a code); anything else is a crash. Each target also proves it
 * refused something, so a generator that only makes valid input fails.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import { stringify as yamlStringify } from 'yaml';
import { pack } from 'msgpackr';
import { GatewayError } from '../../src/errors/base.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { parsePolicyText } from '../../src/policy/holder.js';
import { compilePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS } from '../../src/policy/rules.js';
import { decide } from '../../src/policy/decide.js';
import { ConnectionInspector } from '../../src/policy/inspector.js';
import { presentFlags, resolveRunConfig, readConfigFile, type Flags } from '../../src/config/load.js';
import { runKeys } from '../../src/config/keys/index.js';
import { checkCrossFlagRules, settingsFrom } from '../../src/gateway/settings.js';
import { TokenStore } from '../../src/tokens/store.js';
import { TokenCache } from '../../src/tokens/cache.js';
import { SessionCookies, readCookie } from '../../src/dashboard/session-cookie.js';
import { checkTarget, safeNext } from '../../src/dashboard/request-target.js';
import { loadPemMaterial } from '../../src/pki/server-material.js';
import { checkPeerCertificate, parseSubjectAltName } from '../../src/pki/peer-certificate.js';
import { parseSpiffe } from '../../src/pki/identity.js';
import { parsePrometheusText } from '../../src/telemetry/prom-parse.js';
import { verify as verifySpoolRecord, Spool } from '../../src/telemetry/spool.js';
import { parseInbound } from '../../src/telemetry/protocol.js';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { message, recordedConnections, HANDSHAKE } from '../wire/wire-helpers.js';
import { bytes, casesFromEnv, mutate } from '../hardening/harness.js';
import { assertClean, fuzz, mutateText, NASTY, opMap, pick, value } from './fuzz-kit.js';

// Scales with FUZZ_CASES (scripts/fuzz-long.sh); never below 10 minutes.
t.setTimeout(Math.max(600_000, casesFromEnv() * 5));

// The yaml library reports each oddity of hostile YAML through process.emitWarning, with an excerpt of the input:
// at 100,000 cases that floods stderr. Only those warnings are dropped here; the parse results are still judged.
const emitWarning = process.emitWarning.bind(process) as (...a: unknown[]) => void;
process.emitWarning = ((w: unknown, ...rest: unknown[]) => {
  if ((w as Error | undefined)?.name === 'YAMLWarning' || /^Keys with collection values/.test(String(w))) return;
  emitWarning(w, ...rest);
}) as typeof process.emitWarning;

const isGatewayError = (e: unknown) => e instanceof GatewayError;
const quietLog = () => createLogger({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });

let cluster: TestCluster;
let work: string;
t.before(async () => {
  cluster = await makeTestCluster();
  work = mkdtempSync(join(tmpdir(), 'sgw-fuzz-'));
});
t.teardown(() => { cluster?.cleanup(); if (work) rmSync(work, { recursive: true, force: true }); });

t.test('policy files: parsePolicyText + compile + decide', async (t) => {
  const seeds = [yamlStringify(DEFAULT_POLICY), JSON.stringify(DEFAULT_POLICY), 'version: 1\nrules:\n  client:\n    allow: ["@client", feed]\n    deny: [run]\n  worker: {allow: ["@worker"]}\n'];
  const s = await fuzz(t, {
    name: 'policy files',
    generate: (rand) => (rand() < 0.6 ? mutateText(rand, pick(rand, seeds)) : rand() < 0.5 ? yamlStringify(value(rand)) : JSON.stringify({ version: 1, rules: value(rand) })),
    run: (text) => {
      const doc = parsePolicyText(text, 'fuzz');
      const compiled = compilePolicy(doc, DEFAULT_SETTINGS, 'fuzz');
      decide(compiled, 'client', 'update-graph');
      return 'accepted';
    },
    isExpected: isGatewayError,
  });
  assertClean(t, s);
});

t.test('configuration values and files: resolveRunConfig + cross-flag rules + settings', async (t) => {
  const file = join(work, 'config.yaml');
  const seedFile = 'listen: 127.0.0.1:8786\nscheduler: 127.0.0.1:8785\ndashboard:\n  listen: 127.0.0.1:8787\n  session-ttl: 3600\nterminator:\n  max-connections: 100\n';
  const s = await fuzz(t, {
    name: 'configuration',
    generate: (rand) => {
      const flags: Flags = {};
      const env: Record<string, string> = {};
      for (let k = Math.floor(rand() * 4); k > 0; k--) {
        const spec = pick(rand, runKeys);
        const v = value(rand);
        if (rand() < 0.5) flags[spec.flag] = typeof v === 'string' ? v : Array.isArray(v) ? v.map(String) : String(v);
        else env[spec.env] = String(v);
      }
      const text = rand() < 0.3 ? mutateText(rand, seedFile) : undefined;
      const fileObj = rand() < 0.3 ? { [pick(rand, runKeys).key]: value(rand) } : undefined;
      return { flags, env, text, fileObj };
    },
    run: ({ flags, env, text, fileObj }) => {
      let configFile = fileObj ? { path: file, values: fileObj } : undefined;
      if (text !== undefined) {
        writeFileSync(file, text);
        configFile = readConfigFile(file);
      }
      const sources = { flags: { dir: '/nonexistent', ...flags }, env, cwd: work, ...(configFile ? { file: configFile } : {}) };
      checkCrossFlagRules(presentFlags(runKeys, sources));
      settingsFrom(resolveRunConfig(sources));
      return 'accepted';
    },
    isExpected: isGatewayError,
  });
  assertClean(t, s);
});

t.test('dashboard credentials: token strings through the verifier, session cookies, request targets', async (t) => {
  const store = TokenStore.open(cluster.dir);
  t.teardown(() => store.close());
  const real = [store.create({ name: 'fuzz-a', scope: 'view' }).token, store.create({ name: 'fuzz-b', scope: 'admin' }).token];
  const cache = new TokenCache(store, { now: () => new Date() });
  const cookies = new SessionCookies(3600);
  const goodCookie = cookies.issue('tok-1', new Date()).setCookie.split(';')[0]!.split('=').slice(1).join('=');
  let accepted = 0;
  const s = await fuzz(t, {
    name: 'tokens, cookies, targets',
    generate: (rand) => {
      const kind = Math.floor(rand() * 4);
      const seed = kind === 0 ? pick(rand, real) : kind === 1 ? goodCookie : kind === 2 ? `/status?token=${pick(rand, real)}&next=/x` : `dgw_${'A'.repeat(49)}`;
      return { kind, s: rand() < 0.05 ? seed : mutateText(rand, seed) };
    },
    run: ({ kind, s: input }) => {
      if (kind === 1) {
        readCookie(`a=b; __Host-dgw_session=${input}; c`, '__Host-dgw_session');
        return cookies.verify(input, new Date()) ? (input === goodCookie ? 'accepted' : 'forged') : 'refused';
      }
      if (kind === 2) {
        const v = checkTarget(input);
        safeNext(input);
        return v.ok ? 'accepted' : 'refused';
      }
      const v = cache.verify(input);
      if (v.ok && !real.includes(input)) return 'forged';
      if (v.ok) accepted++;
      return v.ok ? 'accepted' : 'refused';
    },
  });
  assertClean(t, s);
  t.equal(s.outcomes.forged ?? 0, 0, 'no mutated token or cookie was ever accepted');
  t.ok(accepted > 0, 'real tokens still verify');
});

t.test('certificate, key and CRL PEM through the PKI loader; SAN strings and SPIFFE URIs', async (t) => {
  const dir = join(work, 'pem');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { mode: 0o700 });
  const gwCert = await cluster.issue('gateway', 'gw-fuzz');
  const files = { caPath: join(dir, 'ca.pem'), certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem'), crlPath: join(dir, 'crl.pem') };
  await cluster.revoke((await cluster.issue('client', 'gone')).serial);
  const originals = {
    caPath: cluster.caPem,
    certPath: gwCert.certPem,
    keyPath: gwCert.keyPem,
    crlPath: readFileSync(join(cluster.dir, 'crl.pem'), 'utf8'),
  };
  const restore = () => { for (const [k, v] of Object.entries(originals)) writeFileSync(files[k as keyof typeof files], v, { mode: 0o600 }); };
  restore();
  const peer = new X509Certificate((await cluster.issue('client', 'peer')).certPem);
  const uri = `spiffe://${cluster.clusterId}/worker/w1`;
  const sanSeed = `DNS:localhost, URI:${uri}, IP Address:127.0.0.1, URI:"spiffe://x/a, b"`;
  const derMutate = (rand: () => number, pem: string) => {
    const b64 = pem.replace(/-----[^-]+-----|\s/g, '');
    const der = mutate(rand, Buffer.from(b64, 'base64'), 3);
    const label = /-----BEGIN ([^-]+)-----/.exec(pem)?.[1] ?? 'CERTIFICATE';
    return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END ${label}-----\n`;
  };
  const s = await fuzz(t, {
    name: 'PKI loader and identities',
    generate: (rand) => {
      // Loader cases cost a file write and real crypto: a tenth of the mix keeps the target fast.
      const kind = Math.floor(rand() * 10);
      if (kind < 1) {
        const which = pick(rand, Object.keys(files) as Array<keyof typeof files>);
        const text = rand() < 0.5 ? derMutate(rand, originals[which]) : mutateText(rand, originals[which]);
        return { kind: 'loader', which, text };
      }
      if (kind < 6) return { kind: 'san', text: mutateText(rand, sanSeed) };
      return { kind: 'spiffe', text: rand() < 0.8 ? mutateText(rand, uri) : bytes(rand, 40).toString('latin1') };
    },
    run: async (c) => {
      if (c.kind === 'san') {
        const entries = parseSubjectAltName(c.text);
        return entries.filter((e) => e.type === 'URI').length === 1 ? 'accepted' : 'refused';
      }
      if (c.kind === 'spiffe') {
        const id = parseSpiffe(c.text);
        if (id && !/^spiffe:\/\/[a-z0-9._-]{1,63}\/(worker|client|admin|scheduler|gateway)(\/[A-Za-z0-9][A-Za-z0-9._-]{0,62})?$/.test(c.text)) return 'crash-accepted-malformed';
        return id ? 'accepted' : 'refused';
      }
      writeFileSync(files[c.which!], c.text, { mode: 0o600 });
      try {
        const m = await loadPemMaterial({ ...files, clusterId: cluster.clusterId });
        checkPeerCertificate(peer, { clusterId: cluster.clusterId, allowedRoles: ['client'], isRevoked: (x) => m.revokedSerials.has(x), now: new Date() });
        return 'accepted';
      } finally {
        writeFileSync(files[c.which!], originals[c.which!], { mode: 0o600 });
      }
    },
    isExpected: isGatewayError,
  });
  assertClean(t, s);
  t.equal(s.outcomes['crash-accepted-malformed'] ?? 0, 0, 'no malformed SPIFFE URI parsed as an identity');
});

t.test('Prometheus text, control-plane messages and spool records', async (t) => {
  const metrics = createMetrics();
  metrics.refusalsTotal.inc({ port: '8786', reason: 'not_tls' });
  metrics.handshakeSeconds.observe({ port: '8786' }, 0.01);
  const promSeed = await metrics.registry.metrics();
  const schedulerSeed = '# HELP dask_scheduler_workers Number of workers\n# TYPE dask_scheduler_workers gauge\ndask_scheduler_workers{state="idle"} 2.0\ndask_scheduler_tasks{state="memory"} 17 1700000000000\nweird_total{a="b\\"c\\n"} NaN\n';
  const inboundSeeds = ['{"type":"ack","seq":42}', '{"type":"nack","seq":7,"error":"bad"}', '{"type":"command","id":"c1","command":"revoke-certificate","args":{"serial":"0a"},"issuedAt":1700000000000,"sig":"00"}'];
  const spoolDir = join(work, 'spool');
  const spool = await Spool.open({ dir: spoolDir, maxBytes: 1 << 20, maxAgeMs: 86_400_000, log: quietLog(), metrics, now: () => new Date() });
  const seq = (await spool.append(Date.now(), () => Buffer.from('{"batch":[1,2,3]}')))!;
  const record = readFileSync(join(spoolDir, readdirSync(spoolDir).find((n) => n.endsWith('.batch'))!));
  const s = await fuzz(t, {
    name: 'prometheus, control-plane, spool',
    generate: (rand) => {
      const kind = Math.floor(rand() * 3);
      if (kind === 0) return { kind, text: mutateText(rand, rand() < 0.5 ? promSeed : schedulerSeed) };
      if (kind === 1) return { kind, text: rand() < 0.7 ? mutateText(rand, pick(rand, inboundSeeds)) : JSON.stringify(value(rand)) };
      return { kind, buf: mutate(rand, record, 3) };
    },
    run: (c) => {
      if (c.kind === 0) {
        parsePrometheusText(c.text!, { maxBytes: 1 << 20 });
        return 'accepted';
      }
      if (c.kind === 1) return typeof parseInbound(c.text!) === 'string' ? 'refused' : 'accepted';
      const v = verifySpoolRecord(c.buf!, seq);
      if (typeof v !== 'string' && !c.buf!.equals(record)) return v.payload.equals(Buffer.from('{"batch":[1,2,3]}')) ? 'accepted' : 'crash-corrupt-accepted';
      return typeof v === 'string' ? 'refused' : 'accepted';
    },
    isExpected: isGatewayError,
  });
  assertClean(t, s);
  t.equal(s.outcomes['crash-corrupt-accepted'] ?? 0, 0, 'no damaged spool record passed its CRC with a different payload');
});

t.test('Dask messages, structure-aware: mutated op maps through the per-connection inspector', async (t) => {
  const log = quietLog();
  const metrics = createMetrics({ defaultMetrics: false });
  const policy = { current: () => compilePolicy(DEFAULT_POLICY, DEFAULT_SETTINGS, 'default') };
  const recorded = recordedConnections();
  const handshake = message([Buffer.from(pack(HANDSHAKE))]);
  const opener = (role: string) => message([Buffer.from(pack(role === 'worker' ? { op: 'register-worker', address: 'tls://127.0.0.1:4000', name: 'w1', reply: false } : { op: 'register-client', client: 'Client-1', reply: false }))]);
  let conn = 0;
  const s = await fuzz(t, {
    name: 'Dask op maps through the inspector',
    generate: (rand) => {
      const role = pick(rand, ['client', 'worker', 'admin'] as const);
      const msgs: Buffer[] = [];
      for (let i = 1 + Math.floor(rand() * 4); i > 0; i--) {
        let frame0: Buffer;
        try { frame0 = Buffer.from(pack(opMap(rand))); } catch { frame0 = bytes(rand, 32); }
        if (rand() < 0.3) frame0 = mutate(rand, frame0, 2);
        msgs.push(message([frame0, ...(rand() < 0.3 ? [bytes(rand, 64)] : [])]));
      }
      if (rand() < 0.1) msgs.push(mutate(rand, pick(rand, recorded).toScheduler.subarray(0, 2048)));
      return { role, stream: Buffer.concat([handshake, ...(rand() < 0.8 ? [opener(role)] : []), ...msgs]), split: 1 + Math.floor(rand() * 300) };
    },
    run: ({ role, stream, split }) => {
      const insp = new ConnectionInspector({ identity: { cluster: 'c', role, name: 'w1' }, serial: '01', remoteAddress: '127.0.0.1', sanHosts: [], connectionId: String(conn++) },
        policy, { log, metrics, limits: { maxFrames: 64, maxFrame0Bytes: 64 * 1024, maxMessageBytes: 1 << 20 } }, { refused: () => {} });
      for (let i = 0; i < stream.length; i += split) {
        if (insp.fromPeer(stream.subarray(i, i + split), [], []) !== null) return 'refused';
      }
      return 'accepted';
    },
  });
  assertClean(t, s);
  t.ok((s.outcomes.accepted ?? 0) > 0, 'well-formed conversations still pass');
});
