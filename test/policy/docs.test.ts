/** docs/policy.md stays true: its table is the default policy, and it lists exactly the codes the code defines. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { policyTable } from '../../src/cli/policy.js';
import { compilePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS } from '../../src/policy/rules.js';
import { WIRE_ERRORS } from '../../src/wire/errors.js';
import { DENIAL_CODES, policyError } from '../../src/policy/errors.js';

const doc = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');

t.test('the default policy table in docs/policy.md is what policy show prints', async (t) => {
  const m = /<!-- policy-table:start -->\n([\s\S]*?)\n<!-- policy-table:end -->/.exec(doc);
  t.ok(m, 'markers present');
  t.equal(m![1]!.trim(), policyTable(compilePolicy(DEFAULT_POLICY, DEFAULT_SETTINGS, '(built-in default)')).trim());
});

t.test('docs/policy.md lists every wire and policy code, and no other', async (t) => {
  const codes = new Set([
    ...Object.values(WIRE_ERRORS).map((e) => e.code),
    ...Object.values(DENIAL_CODES),
    policyError('invalid').code,
    policyError('unreadable').code,
  ]);
  const documented = new Set([...doc.matchAll(/^\| `(GW_(?:WIRE|POLICY)_[A-Z0-9_]+)` \|/gm)].map((x) => x[1]!));
  t.same([...documented].sort(), [...codes].sort());
});
