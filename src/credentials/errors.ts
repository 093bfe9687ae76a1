/**
 * Every error of the credentials component (codes GW_CREDENTIALS_*). No
 * message ever carries a credential value: validation errors name the field
 * and the rule it broke, never what was received.
 */
import { defineErrors } from '../errors/base.js';

export const credentialsError = defineErrors({
  /** A credential set (file, command output, control-plane push) fails validation. */
  invalid: { code: 'GW_CREDENTIALS_INVALID', message: 'credentials from {source}: {reason}' },
  /** The credentials file cannot be read or is readable by other users. */
  file: { code: 'GW_CREDENTIALS_FILE', message: 'credentials file {file}: {reason}' },
  /** The credentials command failed, timed out, or printed too much. */
  command: { code: 'GW_CREDENTIALS_COMMAND', message: 'credentials command: {reason}' },
  /** Contradictory or unusable credentials configuration. */
  config: { code: 'GW_CREDENTIALS_CONFIG', message: '{reason}' },
});
