/** Error codes of the token store and the `tokens` command (GW_TOKENS_*). */
import { defineErrors } from '../errors/base.js';

export const tokenError = defineErrors({
  nameTaken: { code: 'GW_TOKENS_NAME_TAKEN', message: "an active token named '{name}' already exists (revoke it first)" },
  notFound: { code: 'GW_TOKENS_NOT_FOUND', message: "no active token with id or name '{ref}'" },
  badName: { code: 'GW_TOKENS_BAD_NAME', message: 'token names are 1-64 characters of letters, digits, ".", "_", "@" and "-"; got {name}' },
  badExpiry: { code: 'GW_TOKENS_BAD_EXPIRY', message: '--expires-days must be an integer from 1 to 3650, got {value}' },
  badScope: { code: 'GW_TOKENS_BAD_SCOPE', message: '--scope must be view or admin, got {value}' },
  readOnly: { code: 'GW_TOKENS_STORE_READONLY', message: 'the token database {path} is read-only: {reason}' },
  full: { code: 'GW_TOKENS_STORE_FULL', message: 'the disk holding the token database {path} is full' },
  unavailable: { code: 'GW_TOKENS_STORE_UNAVAILABLE', message: 'cannot open the token database {path}: {reason}' },
  corrupt: { code: 'GW_TOKENS_STORE_CORRUPT', message: 'the token database {path} is not a valid token database: {reason}' },
  busy: { code: 'GW_TOKENS_STORE_BUSY', message: 'the token database {path} stayed locked by another process for too long' },
  newerSchema: { code: 'GW_TOKENS_SCHEMA_NEWER', message: 'the token database {path} has schema version {found}, newer than this gateway understands ({known})' },
});
