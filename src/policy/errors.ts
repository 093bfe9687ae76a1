/** Policy codes: decisions (GW_POLICY_* on a Denial) and policy-file problems. */
import { defineErrors } from '../errors/base.js';

/** Codes carried by denials; stable, used as audit and metric values. */
export const DENIAL_CODES = {
  denied: 'GW_POLICY_DENIED',
  unknownOp: 'GW_POLICY_UNKNOWN_OP',
  pickled: 'GW_POLICY_PICKLED',
  role: 'GW_POLICY_ROLE',
  pinAddress: 'GW_POLICY_PIN_ADDRESS',
  pinName: 'GW_POLICY_PIN_NAME',
  pinStream: 'GW_POLICY_PIN_STREAM',
  forward: 'GW_POLICY_FORWARD',
  argument: 'GW_POLICY_UNPICKLED_ARGUMENT',
} as const;

export const policyError = defineErrors({
  invalid: { code: 'GW_POLICY_INVALID', message: 'invalid policy {source}: {problems}' },
  unreadable: { code: 'GW_POLICY_UNREADABLE', message: 'cannot read policy {source}: {why}' },
});
