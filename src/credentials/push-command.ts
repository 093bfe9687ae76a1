/**
 * The `push-credentials` control-plane command: signed, cluster-bound and
 * replay-checked by telemetry/commands.ts before it gets here. Args:
 *   provider     "aws" (default) or another provider name
 *   expiration   ISO 8601 with a zone, at most 36 h ahead
 *   ...fields    aws: access_key_id, secret_access_key, session_token
 * The audit line of the command shows only auditArgs(): the shape, never a value.
 */
import type { CommandHandler } from '../telemetry/commands.js';
import { credentialSetFromArgs } from './credential.js';
import type { CredentialHolder } from './holder.js';

export const PUSH_COMMAND = 'push-credentials';

export function pushCredentialsCommand(holder: CredentialHolder, now: () => Date): CommandHandler {
  return {
    async apply(args, source) {
      holder.put(credentialSetFromArgs(args, source, now()));
    },
    auditArgs(args) {
      const { provider = 'aws', expiration, ...values } = args;
      return { provider, expiration, fields: Object.keys(values).sort() };
    },
  };
}
