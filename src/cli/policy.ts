/**
 * `scheduler-gateway policy check|explain|show`: validate a policy file,
 * explain one decision, print the policy as a table (docs/policy.md).
 */
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import type { CliIo } from './io.js';
import { parseArgs, type FlagDecl } from './args.js';
import { GatewayError } from '../errors/base.js';
import { resolveKey, type Flags } from '../config/load.js';
import { policyKeys } from '../config/keys/policy.js';
import { isRole, NAMED_ROLES } from '../pki/identity.js';
import { decide } from '../policy/decide.js';
import { groupsOf, KNOWN_OPS } from '../policy/catalog.js';
import { loadPolicyFileSync } from '../policy/holder.js';
import { compilePolicy, DEFAULT_POLICY, DEFAULT_SETTINGS, type CompiledPolicy, type PolicyDocument, type PolicySettings } from '../policy/rules.js';

const FLAGS: FlagDecl[] = [
  { flag: 'file' },
  { flag: 'role' },
  { flag: 'op' },
  { flag: 'pickled', boolean: true },
  { flag: 'worker-client-ops' },
  { flag: 'unknown-ops' },
  { flag: 'yaml', boolean: true },
  { flag: 'help', boolean: true },
];

const USAGE = `usage:
  scheduler-gateway policy check FILE
  scheduler-gateway policy explain --role ROLE --op OP [--file FILE] [--pickled] [--worker-client-ops BOOL] [--unknown-ops MODE]
  scheduler-gateway policy show [--file FILE] [--yaml] [--worker-client-ops BOOL] [--unknown-ops MODE]

  check      validate a YAML or JSON policy file; every problem names its key (exit 0 valid, 2 invalid)
  explain    print the decision and the rule that made it (exit 0 allow, 1 deny)
  show       print the policy (default: the built-in one) as a markdown table, or as YAML with --yaml

  --file FILE                 policy file (default: the built-in default policy)
  --role ROLE                 client, worker or admin (the role in the peer certificate)
  --op OP                     a Dask operation, e.g. update-graph, run_function
  --pickled                   the message carries a __Pickled__ placeholder in frame 0
  --worker-client-ops BOOL    workers may send client ops (default: ${policyKeys.workerClientOps.default}) [env ${policyKeys.workerClientOps.env}]
  --unknown-ops MODE          deny, allow or audit (default: ${policyKeys.unknownOps.default}) [env ${policyKeys.unknownOps.env}]
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, FLAGS);
  const [sub, ...rest] = positionals;
  if (flags.help || sub === undefined) {
    io.stdout.write(USAGE);
    return flags.help ? 0 : 2;
  }
  switch (sub) {
    case 'check':
      if (rest.length !== 1) throw usage('policy check takes exactly one FILE');
      return check(resolve(io.cwd, rest[0]!), io);
    case 'explain':
      return explain(flags, io);
    case 'show':
      return show(flags, io);
    default:
      throw usage(`unknown policy subcommand '${sub}' (check, explain, show)`);
  }
}

function usage(message: string): GatewayError {
  return new GatewayError('GW_USAGE', message);
}

function check(path: string, io: CliIo): number {
  let doc: PolicyDocument;
  try {
    doc = loadPolicyFileSync(path);
  } catch (e) {
    if (e instanceof GatewayError && Array.isArray(e.details.errors) && e.details.errors.length > 0) {
      for (const problem of e.details.errors as string[]) io.stderr.write(`${path}: ${problem}\n`);
      return 2;
    }
    throw e;
  }
  const p = compilePolicy(doc, DEFAULT_SETTINGS, path);
  const counts = NAMED_ROLES.map((r) => `${r} ${[...KNOWN_OPS].filter((op) => decide(p, r, op).effect === 'allow').length}`);
  io.stdout.write(`${path}: valid (known ops allowed with default settings: ${counts.join(', ')})\n`);
  return 0;
}

/** The two settings a policy decision depends on, read as `run` reads them (flag, then environment). */
function settingsFrom(flags: Flags, io: CliIo): PolicySettings {
  const sources = { flags, env: io.env, cwd: io.cwd };
  return {
    ...DEFAULT_SETTINGS,
    workerClientOps: resolveKey(policyKeys.workerClientOps, sources),
    unknownOps: resolveKey(policyKeys.unknownOps, sources),
  };
}

function policyFrom(flags: Flags, io: CliIo): CompiledPolicy {
  const file = typeof flags.file === 'string' ? resolve(io.cwd, flags.file) : undefined;
  return compilePolicy(file ? loadPolicyFileSync(file) : DEFAULT_POLICY, settingsFrom(flags, io), file ?? '(built-in default)');
}

function explain(flags: Flags, io: CliIo): number {
  const role = flags.role;
  const op = flags.op;
  if (typeof role !== 'string' || !isRole(role)) throw usage('policy explain needs --role client|worker|admin');
  if (typeof op !== 'string' || op === '') throw usage('policy explain needs --op OP');
  const p = policyFrom(flags, io);
  const d = decide(p, role, op, { pickled: flags.pickled === true });
  const groups = groupsOf(op);
  const known = groups.length > 0 ? `groups: ${groups.map((g) => '@' + g).join(', ')}` : 'not a known Dask operation';
  if (d.effect === 'allow') {
    io.stdout.write(`allow: ${role} may send ${op}${d.audit ? ' (with an audit line)' : ''}\n  rule: ${d.rule}\n  ${known}\n  policy: ${p.source}\n`);
    return 0;
  }
  io.stdout.write(`deny: ${d.reason} [${d.code}]\n  rule: ${d.rule}\n  ${known}\n  policy: ${p.source}\n`);
  return 1;
}

/** The policy as a markdown table: one row per known op, one column per role. */
export function policyTable(p: CompiledPolicy): string {
  const cell = (role: (typeof NAMED_ROLES)[number], op: string) => {
    const d = decide(p, role, op);
    const pickled = d.effect === 'allow' && decide(p, role, op, { pickled: true }).effect === 'allow' ? ' (+pickled)' : '';
    return d.effect === 'allow' ? `allow${pickled}` : 'deny';
  };
  const roles = ['client', 'worker', 'admin'] as const;
  const rows = [...KNOWN_OPS].sort().map((op) => `| \`${op}\` | ${groupsOf(op).map((g) => '@' + g).join(' ')} | ${roles.map((r) => cell(r, op)).join(' | ')} |`);
  const s = p.settings;
  return [
    `Policy: ${p.source}; worker-client-ops: ${s.workerClientOps}; unknown-ops: ${s.unknownOps}; pin-worker-name: ${s.pinWorkerName}`,
    '',
    '| op | groups | client | worker | admin |',
    '|---|---|---|---|---|',
    ...rows,
    `| (any other op) | | ${roles.map((r) => cell(r, '(unknown-op)')).join(' | ')} |`,
    '',
    '"+pickled": also allowed when frame 0 carries a __Pickled__ placeholder.',
    '',
  ].join('\n');
}

function show(flags: Flags, io: CliIo): number {
  if (flags.yaml) {
    const file = typeof flags.file === 'string' ? resolve(io.cwd, flags.file) : undefined;
    io.stdout.write(stringify(file ? loadPolicyFileSync(file) : DEFAULT_POLICY));
    return 0;
  }
  io.stdout.write(policyTable(policyFrom(flags, io)));
  return 0;
}
