import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

function codesIn(text: string, pattern: RegExp): Set<string> {
  return new Set([...text.matchAll(pattern)].map((m) => m[1]!));
}

const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
const [live, retired] = doc.split('## Retired codes');
const documented = codesIn(live!, /\|\s*`(GW_[A-Z0-9_]+)`\s*\|/g);
const retiredCodes = codesIn(retired ?? '', /\|\s*`(GW_[A-Z0-9_]+)`\s*\|/g);
const used = new Set<string>();
for (const f of sourceFiles(join(root, 'src'))) for (const c of codesIn(readFileSync(f, 'utf8'), /'(GW_[A-Z0-9_]+)'/g)) used.add(c);

t.test('every error code in the source is documented in docs/errors.md', async (t) => {
  t.same([...used].filter((c) => !documented.has(c)).sort(), []);
});

t.test('docs/errors.md lists no code the source does not use', async (t) => {
  t.same([...documented].filter((c) => !used.has(c)).sort(), []);
});

t.test('a retired code is never used again', async (t) => {
  t.ok(retiredCodes.size > 0, 'the retired table is parsed');
  t.same([...retiredCodes].filter((c) => used.has(c) || documented.has(c)).sort(), []);
});
