/**
 * docs/runbook.md stays true to the CLI: every `certs ...` command it shows
 * exists, and every flag it gives that command is one the command documents.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCerts } from '../pki/cli-harness.js';

const root = join(import.meta.dirname, '..', '..');
const runbook = readFileSync(join(root, 'docs', 'runbook.md'), 'utf8');

t.test('every certs command and flag in the runbook exists', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'sgw-runbook-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const uses = [...runbook.matchAll(/certs (rotate-ca (?:begin|switch|finish)|[a-z]+)((?: (?:--[a-z0-9-]+|[A-Za-z0-9$_./=-]+|\[[^\]]*\]))*)/g)]
    .map((m) => ({ sub: m[1]!, flags: [...m[2]!.matchAll(/--[a-z0-9-]+/g)].map((f) => f[0]) }));
  t.ok(uses.length >= 15, `the runbook's commands are found (${uses.length})`);
  const help = new Map<string, string>();
  for (const u of uses) {
    if (!help.has(u.sub)) {
      const r = await runCerts([...u.sub.split(' '), '--help'], { cwd });
      t.equal(r.code, 0, `certs ${u.sub} exists`);
      help.set(u.sub, r.stdout);
    }
    for (const f of u.flags) t.match(help.get(u.sub)!, new RegExp(`^\\s+${f}\\b`, 'm'), `certs ${u.sub} ${f}`);
  }
});
