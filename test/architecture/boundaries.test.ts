/**
 * The folder layout is the architecture: these rules keep it true. Each
 * folder may import only what its row allows; `type`-only imports of the
 * shared metrics handle and of declared seams are listed as such.
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

t.test('components never import each other: only the composition root and the CLI wire them', async (t) => {
  const components = ['terminator', 'dashboard', 'telemetry', 'credentials', 'policy', 'supervisor'];
  // Declared seams: the metrics handle and command-handler types are shared API; the dashboard owns the use of tokens.
  const allowed = (e: Edge) =>
    (e.typeOnly && (e.to === 'telemetry/metrics.ts' || e.to === 'telemetry/commands.ts' || e.to === 'terminator/inspector.ts'))
    || (e.from === 'dashboard' && folderOf(e.to) === 'tokens');
  const bad = all.filter((e) => components.includes(e.from) && !e.builtin && components.includes(folderOf(e.to))
    && folderOf(e.to) !== e.from && !allowed(e));
  t.same(bad.map((e) => `${e.file} -> ${e.to}`), []);
});

t.test('the PKI depends on no component (a bundle may embed the credentials snippet text)', async (t) => {
  const bad = crossing('pki').filter((e) => !['errors', 'gateway'].includes(folderOf(e.to)) && e.to !== 'credentials/aws-config.ts');
  t.same(bad.map((e) => `${e.file} -> ${e.to}`), []);
  t.same(crossing('pki').filter((e) => folderOf(e.to) === 'gateway' && !e.typeOnly).map((e) => e.file), [], 'gateway types only');
});

t.test('only gateway/compose.ts and the CLI start components', async (t) => {
  const starters = all.filter((e) => ['terminator/terminator.ts', 'dashboard/index.ts', 'telemetry/telemetry.ts', 'credentials/index.ts'].includes(e.to) && !e.typeOnly);
  t.same([...new Set(starters.map((e) => e.file))].filter((f) => f !== 'gateway/compose.ts' && !f.startsWith('cli/')), []);
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
