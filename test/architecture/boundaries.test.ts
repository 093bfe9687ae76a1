/**
 * The folder layout is the architecture: these rules keep it true. Every
 * folder stands on a floor and imports only from floors below its own (the
 * composition root on top, the services the components share below them);
 * `type`-only imports of declared seams between components are listed as such.
 */
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';

const SRC = join(import.meta.dirname, '..', '..', 'src');

interface Edge { from: string; file: string; to: string; typeOnly: boolean; builtin?: string }

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of walk(SRC)) {
    const from = relative(SRC, file).split('/')[0]!;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) {
      const spec = m[3]!;
      const typeOnly = Boolean(m[2]);
      if (spec.startsWith('.')) {
        const target = relative(SRC, resolve(dirname(file), spec));
        out.push({ from, file: relative(SRC, file), to: target.replace(/\.js$/, '.ts'), typeOnly });
      } else if (spec.startsWith('node:')) {
        out.push({ from, file: relative(SRC, file), to: '', typeOnly, builtin: spec });
      }
    }
  }
  return out;
}

const all = edges();
const folderOf = (p: string) => p.split('/')[0]!;
const crossing = (from: string) => all.filter((e) => e.from === from && !e.builtin && folderOf(e.to) !== from);

t.test('the frame parser touches nothing but its own errors: no sockets, no policy', async (t) => {
  t.same(crossing('wire').map((e) => e.to).filter((to) => !to.startsWith('errors/')), []);
  // node:buffer's isUtf8 is a pure function over bytes (the strict UTF-8 check Python applies).
  t.same(all.filter((e) => e.from === 'wire' && e.builtin && e.builtin !== 'node:buffer').map((e) => e.builtin), []);
});

t.test('policy never touches TLS or sockets, and reaches the terminator only through the inspector seam', async (t) => {
  t.same(all.filter((e) => e.from === 'policy' && ['node:tls', 'node:net'].includes(e.builtin ?? '')).map((e) => e.file), []);
  t.same(crossing('policy').filter((e) => folderOf(e.to) === 'terminator' && !(e.to === 'terminator/inspector.ts' && e.typeOnly)).map((e) => e.file), []);
});

/** Top floor first. A folder imports only from floors below its own (or, for components, through a declared seam). */
const FLOORS: readonly (readonly string[])[] = [
  ['cli'],
  ['gateway', 'control-plane-dev'], // the composition root; the development receiver, a root of its own
  ['dataplane'], // the data-plane processes (--processes N): the primary's side, and the root of each process
  ['terminator', 'dashboard', 'telemetry', 'credentials', 'policy', 'supervisor'], // the components
  ['runtime'], // services the components share
  ['pki', 'config', 'wire', 'tokens'],
  ['errors', 'log', 'limits'], // limits/ is pure bookkeeping over node: only; config declares its keys' help from it
];
const floorOf = (folder: string) => FLOORS.length - FLOORS.findIndex((f) => f.includes(folder));
const COMPONENTS = FLOORS[3]!;
const SERVICES = FLOORS[4]!;

t.test('every folder of src/ stands on a floor', async (t) => {
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  t.same(folders.filter((f) => !FLOORS.flat().includes(f)), []);
});

t.test('no import runs up a floor', async (t) => {
  const up = all.filter((e) => !e.builtin && floorOf(folderOf(e.to)) > floorOf(e.from));
  t.same(up.map((e) => `${e.file} -> ${e.to}`), []);
});

t.test('components never import the composition root; only the CLI does', async (t) => {
  const bad = all.filter((e) => !e.builtin && folderOf(e.to) === 'gateway' && e.from !== 'gateway' && e.from !== 'cli');
  t.same(bad.map((e) => `${e.file} -> ${e.to}`), []);
  t.ok(all.some((e) => e.from === 'terminator' && folderOf(e.to) === 'runtime'), 'components reach shared services in runtime/');
});

t.test('the daemon never imports the development receiver; only the CLI does', async (t) => {
  const bad = all.filter((e) => !e.builtin && folderOf(e.to) === 'control-plane-dev' && e.from !== 'control-plane-dev' && e.from !== 'cli');
  t.same(bad.map((e) => `${e.file} -> ${e.to}`), []);
  t.ok(all.some((e) => e.file === 'cli/control-plane-dev.ts' && folderOf(e.to) === 'control-plane-dev'), 'the scanner sees the CLI start it');
  t.ok(all.some((e) => e.from === 'control-plane-dev' && e.to === 'telemetry/protocol.ts'), 'it shares the protocol from below');
});

t.test('the shared services import no component and not the composition root', async (t) => {
  const bad = all.filter((e) => SERVICES.includes(e.from) && !e.builtin && [...COMPONENTS, 'gateway', 'cli'].includes(folderOf(e.to)));
  t.same(bad.map((e) => `${e.file} -> ${e.to}`), []);
});

t.test('components never import each other: only the composition root and the CLI wire them', async (t) => {
  // Declared seams: command-handler and inspector types are shared API.
  const allowed = (e: Edge) => e.typeOnly && (e.to === 'telemetry/commands.ts' || e.to === 'terminator/inspector.ts');
  const bad = all.filter((e) => COMPONENTS.includes(e.from) && !e.builtin && COMPONENTS.includes(folderOf(e.to))
    && folderOf(e.to) !== e.from && !allowed(e));
  t.same(bad.map((e) => `${e.file} -> ${e.to}`), []);
});

t.test('the PKI depends on nothing but the error catalogue', async (t) => {
  t.same(crossing('pki').filter((e) => folderOf(e.to) !== 'errors').map((e) => `${e.file} -> ${e.to}`), []);
});

t.test('only gateway/compose.ts, a data-plane process and the CLI start components', async (t) => {
  const starters = all.filter((e) => ['terminator/terminator.ts', 'dashboard/index.ts', 'telemetry/telemetry.ts', 'credentials/index.ts'].includes(e.to) && !e.typeOnly);
  t.same([...new Set(starters.map((e) => e.file))].filter((f) => f !== 'gateway/compose.ts' && f !== 'dataplane/worker.ts' && !f.startsWith('cli/')), []);
});

t.test('the data plane is started by the composition root only, and imports nothing above it', async (t) => {
  const users = all.filter((e) => !e.builtin && folderOf(e.to) === 'dataplane' && e.from !== 'dataplane');
  t.same([...new Set(users.map((e) => e.file))], ['gateway/compose.ts']);
  t.ok(all.some((e) => e.file === 'dataplane/worker.ts' && e.to === 'terminator/terminator.ts' && !e.typeOnly), 'a data-plane process runs the same terminator');
});

t.test('the import scanner sees the imports it judges (a rule over nothing would always pass)', async (t) => {
  t.ok(all.some((e) => e.file === 'gateway/compose.ts' && e.to === 'terminator/terminator.ts' && !e.typeOnly));
  t.ok(all.some((e) => e.from === 'terminator' && e.builtin === 'node:tls'));
  t.ok(all.some((e) => e.from === 'policy' && e.to === 'terminator/inspector.ts' && e.typeOnly));
});

t.test('peer certificates are read through pki/peer-certificate.ts only (Node 20 getPeerX509Certificate leaks per call)', async (t) => {
  const callers = walk(SRC).filter((f) => /\.getPeerX509Certificate\s*\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
  t.same(callers, [], 'nobody calls TLSSocket#getPeerX509Certificate()');
  const readers = walk(SRC).filter((f) => /\.getPeerCertificate\s*\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
  t.same(readers, ['pki/peer-certificate.ts'], 'one place reads the peer certificate (the scanner sees it there)');
});

t.test('each X.509 stack has one job in one place', async (t) => {
  const files = walk(SRC).map((f) => ({ file: relative(SRC, f), text: readFileSync(f, 'utf8') }));
  const importing = (pkg: string) => files.filter((f) => new RegExp(`^import\\s[^;]*from\\s+'${pkg}'`, 'm').test(f.text)).map((f) => f.file);
  t.same(importing('@peculiar/x509'), ['pki/x509.ts'], '@peculiar/x509: making and signing certificates and CRLs');
  t.same(importing('node-forge'), ['pki/p12.ts'], 'node-forge: PKCS#12');
  // Types may be named anywhere; only certificate.ts parses with Node's X509Certificate.
  const nodeX509 = files.filter((f) => /^import\s+\{[^}]*(?<!type )\bX509Certificate\b[^}]*\}\s+from\s+'node:crypto'/m.test(f.text) || /^(?!\s*(\*|\/\/)).*new X509Certificate\(/m.test(f.text));
  t.same(nodeX509.map((f) => f.file), ['pki/certificate.ts'], "Node's X509Certificate: reading and checking certificates");
});
