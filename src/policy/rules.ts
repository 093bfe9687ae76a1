/**
 * The policy file and its compiled form.
 *
 * A policy file (YAML or JSON) looks like:
 *
 *   version: 1
 *   rules:
 *     client:                       # a certificate role: client, worker or admin
 *       allow: ["@client", feed]    # ops this role may send
 *       deny: [rebalance]           # ops refused even if allowed above
 *       pickled: [update-graph]     # ops that may carry {"__Pickled__": k} in frame 0
 *
 * Fields, for each role under `rules`:
 *   allow    list of entries; an entry is an op name from catalog.ts, a group
 *            "@control", "@client", "@client-code", "@client-run", "@worker",
 *            "@admin", or "*"
 *            (every op, known or not).
 *   deny     same entries; checked first, so deny wins over allow.
 *   pickled  same entries; a message whose frame 0 holds a `__Pickled__`
 *            placeholder is refused unless its op matches here, because the
 *            scheduler unpickles it while decoding.
 * A role that is absent may send nothing but @control ops.
 *
 * Combining rule (decide.ts): a pickled frame 0 needs a `pickled` match; then
 * @control is always allowed; then the role's deny, then its allow; for a
 * worker with worker-client-ops on, the client role's deny and allow next;
 * then an op unknown to the catalog follows the unknown-ops setting; anything
 * else is denied ("default-deny"). The first matching entry names the rule.
 */
import { PeerRole, NAMED_ROLES, isPeerRole } from '../pki/identity.js';
import { KNOWN_OPS, OP_GROUPS, isOpGroup } from './catalog.js';
import { policyKeys } from '../config/keys/policy.js';

export type UnknownOps = 'deny' | 'allow' | 'audit';

export interface PolicySettings {
  /** Workers may also send what the client role may (tasks calling get_client()). */
  readonly workerClientOps: boolean;
  /** What happens to ops the catalog does not know, for roles without "*". */
  readonly unknownOps: UnknownOps;
  /** register-worker's `name` must equal the certificate name. */
  readonly pinWorkerName: boolean;
}

export const DEFAULT_SETTINGS: PolicySettings = {
  workerClientOps: policyKeys.workerClientOps.default,
  unknownOps: policyKeys.unknownOps.default,
  pinWorkerName: policyKeys.pinWorkerName.default,
};

export interface RoleRules {
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
  readonly pickled?: readonly string[];
}

export interface PolicyDocument {
  readonly version: 1;
  readonly rules: Partial<Record<PeerRole, RoleRules>>;
}

/**
 * The default policy, chosen deliberately (docs/policy.md has the table of
 * Client APIs with a reason each): a client certificate may use every Client
 * API a data scientist uses, and nothing that runs code inside the scheduler
 * process or reaches outside the cluster:
 *  - client: @client, plus @client-run (Client.run, get_versions, Actors)
 *    through the forward guard. Not `feed` (progress bars): it runs
 *    client-supplied code on the scheduler; allow "@client-code" to trade.
 *  - `pickled: [update-graph]`: since Dask 2023.4 every graph submission
 *    carries pickles the scheduler unpickles, so on such clusters whoever may
 *    submit work may run code on the scheduler; the policy cannot change that.
 *    2022.12.1 clients never put `__Pickled__` in frame 0.
 *  - worker: worker ops; client ops too through worker-client-ops (setting).
 *  - admin: everything, including what no client tool needs.
 */
export const DEFAULT_POLICY: PolicyDocument = {
  version: 1,
  rules: {
    client: { allow: ['@client', '@client-run'], deny: [], pickled: ['update-graph'] },
    worker: { allow: ['@worker'], deny: [], pickled: [] },
    admin: { allow: ['*'], deny: [], pickled: ['*'] },
  },
};

/** One compiled list: op -> the rule reference that named it. */
export interface CompiledList {
  readonly any: string | null;
  readonly ops: ReadonlyMap<string, string>;
}

export interface CompiledRole {
  readonly allow: CompiledList;
  readonly deny: CompiledList;
  readonly pickled: CompiledList;
}

export interface CompiledPolicy {
  readonly roles: Readonly<Record<PeerRole, CompiledRole>>;
  readonly settings: PolicySettings;
  readonly source: string;
}

const LIST_FIELDS = ['allow', 'deny', 'pickled'] as const;

/**
 * Checks a parsed document; returns every problem, each naming its key, e.g.
 * `rules.client.allow[3]: unknown op "foo"`.
 */
export function validatePolicy(doc: unknown): string[] {
  const problems: string[] = [];
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return ['(top level): expected a mapping with "version" and "rules"'];
  const top = doc as Record<string, unknown>;
  for (const k of Object.keys(top)) if (k !== 'version' && k !== 'rules') problems.push(`${k}: unknown key (expected version, rules)`);
  if (top.version !== 1) problems.push(`version: expected 1, got ${JSON.stringify(top.version ?? null)}`);
  const rules = top.rules;
  if (rules === null || typeof rules !== 'object' || Array.isArray(rules)) {
    problems.push('rules: expected a mapping of roles (client, worker, admin)');
    return problems;
  }
  for (const [role, body] of Object.entries(rules as Record<string, unknown>)) {
    const at = `rules.${role}`;
    if (!isPeerRole(role)) {
      problems.push(`${at}: unknown role (expected ${NAMED_ROLES.join(', ')})`);
      continue;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      problems.push(`${at}: expected a mapping with allow, deny, pickled`);
      continue;
    }
    for (const [field, list] of Object.entries(body as Record<string, unknown>)) {
      if (!(LIST_FIELDS as readonly string[]).includes(field)) {
        problems.push(`${at}.${field}: unknown key (expected ${LIST_FIELDS.join(', ')})`);
        continue;
      }
      if (!Array.isArray(list)) {
        problems.push(`${at}.${field}: expected a list`);
        continue;
      }
      list.forEach((entry, i) => {
        const problem = entryProblem(entry);
        if (problem) problems.push(`${at}.${field}[${i}]: ${problem}`);
      });
    }
  }
  return problems;
}

function entryProblem(entry: unknown): string | null {
  if (typeof entry !== 'string') return `expected an op name, "@group" or "*", got ${JSON.stringify(entry)}`;
  if (entry === '*') return null;
  if (entry.startsWith('@')) return isOpGroup(entry.slice(1)) ? null : `unknown group "${entry}" (expected ${Object.keys(OP_GROUPS).map((g) => '@' + g).join(', ')})`;
  return KNOWN_OPS.has(entry) ? null : `unknown op "${entry}"`;
}

/** Compiles a document that validatePolicy accepted. */
export function compilePolicy(doc: PolicyDocument, settings: PolicySettings, source: string): CompiledPolicy {
  const roles = {} as Record<PeerRole, CompiledRole>;
  for (const role of NAMED_ROLES) {
    const r = doc.rules[role] ?? {};
    roles[role] = {
      allow: compileList(r.allow ?? [], `rules.${role}.allow`),
      deny: compileList(r.deny ?? [], `rules.${role}.deny`),
      pickled: compileList(r.pickled ?? [], `rules.${role}.pickled`),
    };
  }
  return { roles, settings, source };
}

function compileList(entries: readonly string[], at: string): CompiledList {
  let any: string | null = null;
  const ops = new Map<string, string>();
  entries.forEach((entry, i) => {
    const ref = `${at}[${i}]`;
    if (entry === '*') any ??= ref;
    else if (entry.startsWith('@')) {
      for (const op of OP_GROUPS[entry.slice(1) as keyof typeof OP_GROUPS]) if (!ops.has(op)) ops.set(op, `${ref} ${entry}`);
    } else if (!ops.has(entry)) ops.set(entry, ref);
  });
  return { any, ops };
}

/** The rule that names op in a list, or null. */
export function match(list: CompiledList, op: string): string | null {
  return list.ops.get(op) ?? list.any;
}
