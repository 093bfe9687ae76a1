/**
 * The pure authorization function: (policy, role, op, facts) -> decision.
 * No I/O, no clock, no connection state (pinning lives in inspector.ts).
 * The order of checks is the combining rule documented in rules.ts.
 */
import type { Role } from '../pki/identity.js';
import { isPeerRole } from '../pki/identity.js';
import { KNOWN_OPS, OP_GROUPS } from './catalog.js';
import { DENIAL_CODES } from './errors.js';
import { match, type CompiledPolicy, type CompiledRole } from './rules.js';

export type Decision =
  | { readonly effect: 'allow'; readonly rule: string; readonly audit: boolean }
  | { readonly effect: 'deny'; readonly rule: string; readonly code: string; readonly reason: string };

export interface OpFacts {
  /** Frame 0 holds a `__Pickled__` placeholder inside this op's message. */
  readonly pickled: boolean;
}

const CONTROL: ReadonlySet<string> = new Set(OP_GROUPS.control);
const NOT_PICKLED: OpFacts = { pickled: false };

function deny(rule: string, code: string, reason: string): Decision {
  return { effect: 'deny', rule, code, reason };
}

export function decide(policy: CompiledPolicy, role: Role, op: string, facts: OpFacts = NOT_PICKLED): Decision {
  if (!isPeerRole(role)) return deny('role', DENIAL_CODES.role, `role ${role} may not send Dask operations`);
  const own = policy.roles[role];
  const granted = grant(policy, role, own, op);
  if (granted.effect === 'deny' || !facts.pickled) return granted;
  // The scheduler unpickles while decoding, before any handler runs.
  const by = granted.rule.startsWith('rules.client.') && role !== 'client' ? policy.roles.client : own;
  const pickledRule = match(by.pickled, op);
  if (pickledRule === null) return deny(`rules.${by === own ? role : 'client'}.pickled`, DENIAL_CODES.pickled, `${op} carries a __Pickled__ placeholder`);
  return granted;
}

function grant(policy: CompiledPolicy, role: 'client' | 'worker' | 'admin', own: CompiledRole, op: string): Decision {
  if (CONTROL.has(op)) return { effect: 'allow', rule: 'builtin:control', audit: false };
  const denied = match(own.deny, op);
  if (denied !== null) return deny(denied, DENIAL_CODES.denied, `${op} is denied for ${role}`);
  const allowed = match(own.allow, op);
  if (allowed !== null) return { effect: 'allow', rule: allowed, audit: false };
  if (role === 'worker' && policy.settings.workerClientOps) {
    const client = policy.roles.client;
    const cDenied = match(client.deny, op);
    if (cDenied !== null) return deny(cDenied, DENIAL_CODES.denied, `${op} is denied for client (worker-client-ops)`);
    const cAllowed = match(client.allow, op);
    if (cAllowed !== null) return { effect: 'allow', rule: cAllowed, audit: false };
  }
  if (!KNOWN_OPS.has(op)) {
    switch (policy.settings.unknownOps) {
      case 'allow':
        return { effect: 'allow', rule: 'unknown-ops', audit: false };
      case 'audit':
        return { effect: 'allow', rule: 'unknown-ops', audit: true };
      case 'deny':
        return deny('unknown-ops', DENIAL_CODES.unknownOp, `${op} is not a known Dask operation`);
    }
  }
  const hint = role === 'worker' && !policy.settings.workerClientOps && match(policy.roles.client.allow, op) !== null ? ' (a client op; worker-client-ops is off)' : '';
  return deny('default-deny', DENIAL_CODES.denied, `${op} is not allowed for ${role}${hint}`);
}
