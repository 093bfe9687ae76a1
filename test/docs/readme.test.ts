import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

t.test('README opens with exactly two commands, and both scripts exist', async (t) => {
  const first = /```sh\n([\s\S]*?)```/.exec(readme);
  t.ok(first, 'a first code block');
  const commands = first![1]!.trim().split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
  t.same(commands, ['bash scripts/quickstart.sh', 'bash scripts/test.sh']);
  for (const c of commands) t.ok(existsSync(join(root, c.split(' ')[1]!)), c);
  t.match(readFileSync(join(root, '.ci', 'run'), 'utf8'), /scripts\/test\.sh/, '.ci/run calls the README test command');
});

t.test('README\'s "What leaves the cluster" is the documented telemetry text, word for word', async (t) => {
  const doc = readFileSync(join(root, 'docs', 'telemetry-protocol.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## 7. What leaves the cluster'), doc.indexOf('## 8. '));
  const quoted = section.split('\n').filter((l) => l.startsWith('>')).map((l) => l.replace(/^> ?/, '')).join('\n').trim();
  const body = quoted.replace(/^### What leaves the cluster\s*/, '');
  const inReadme = readme.slice(readme.indexOf('## What leaves the cluster'));
  t.ok(inReadme.includes(body), 'README carries the section unchanged');
});
