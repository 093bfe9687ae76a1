/**
 * A cloud credential set and everything pure about it: strict validation of
 * the three input shapes (AWS credential_process JSON, STS AssumeRole output,
 * our generic form), of control-plane command args, and the two output forms.
 *
 * Validation never echoes a value: an error names the field and the rule.
 * JSON.parse's own messages quote the input (Node 20: `"abc" is not valid
 * JSON`), so they are replaced, never passed on.
 */
import { credentialsError } from './errors.js';

export interface CredentialSet {
  /** "aws", or any other provider name served in the generic form. */
  readonly provider: string;
  /** Field name -> value; for aws: access_key_id, secret_access_key, session_token. */
  readonly values: Readonly<Record<string, string>>;
  readonly expiration: Date;
  /** Where it came from, for logs: "file", "command", "control-plane:<command id>". */
  readonly source: string;
}

/** STS hands out at most 36 hours (GetSessionToken); anything longer is not a short-lived credential. */
export const MAX_LIFETIME_MS = 36 * 3600_000;
export const MAX_DOCUMENT_BYTES = 64 * 1024;
const MAX_FIELDS = 16;
const MAX_VALUE = 8192;

const PROVIDER = /^[a-z][a-z0-9-]{0,31}$/;
const FIELD = /^[a-z][a-z0-9_]{0,63}$/;
const PRINTABLE = /^[\x21-\x7e]+$/;
// RFC 3339 date-time: a zone is mandatory so "when" never depends on the gateway's TZ.
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})$/;

const AWS_FIELDS: Record<string, { pattern: RegExp; rule: string; required: boolean }> = {
  access_key_id: { pattern: /^[A-Z0-9]{16,128}$/, rule: '16 to 128 upper-case letters and digits', required: true },
  secret_access_key: { pattern: /^[A-Za-z0-9/+=]{16,128}$/, rule: '16 to 128 base64 characters', required: true },
  session_token: { pattern: /^[A-Za-z0-9/+=]{16,8192}$/, rule: '16 to 8192 base64 characters', required: false },
};

/** Builds a validated set; throws GW_CREDENTIALS_INVALID naming the first broken rule. */
export function credentialSet(provider: unknown, values: Record<string, unknown>, expiration: unknown, source: string, now: Date): CredentialSet {
  const bad = (reason: string) => credentialsError('invalid', { source, reason });
  if (typeof provider !== 'string' || !PROVIDER.test(provider)) throw bad('provider must be a lower-case name (a-z, 0-9, -) of at most 32 characters');
  const names = Object.keys(values);
  if (names.length === 0 || names.length > MAX_FIELDS) throw bad(`expected 1 to ${MAX_FIELDS} credential fields, got ${names.length}`);
  const clean: Record<string, string> = {};
  for (const name of names) {
    const v = values[name];
    if (!FIELD.test(name)) throw bad(`field name ${JSON.stringify(name.slice(0, 64))} is not lower_snake_case`);
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_VALUE || !PRINTABLE.test(v)) throw bad(`${name} must be 1 to ${MAX_VALUE} printable characters without spaces`);
    clean[name] = v;
  }
  if (provider === 'aws') {
    for (const [name, spec] of Object.entries(AWS_FIELDS)) {
      const v = clean[name];
      if (v === undefined) {
        if (spec.required) throw bad(`aws credentials need ${name}`);
      } else if (!spec.pattern.test(v)) throw bad(`${name} must be ${spec.rule}`);
    }
    const extra = names.find((n) => !(n in AWS_FIELDS));
    if (extra) throw bad(`aws credentials have no field ${extra}`);
  }
  return { provider, values: Object.freeze(clean), expiration: parseExpiration(expiration, source, now), source };
}

export function parseExpiration(raw: unknown, source: string, now: Date): Date {
  const bad = (reason: string) => credentialsError('invalid', { source, reason });
  if (typeof raw !== 'string' || !ISO_8601.test(raw)) throw bad('expiration must be an ISO 8601 time with a zone, e.g. 2026-01-01T12:00:00Z (short-lived credentials only)');
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw bad('expiration is not a valid date');
  if (t <= now.getTime()) throw bad(`expiration ${new Date(t).toISOString()} has already passed`);
  if (t - now.getTime() > MAX_LIFETIME_MS) throw bad(`expiration ${new Date(t).toISOString()} is more than 36 hours away: only short-lived credentials are accepted`);
  return new Date(t);
}

/**
 * Parses what a credentials file holds or a credentials command prints:
 *   AWS credential_process: {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
 *   STS output:             {"Credentials": {"AccessKeyId", ..., "Expiration"}}
 *   generic:                {"provider": "...", "expiration": "...", "values": {"name": "value", ...}}
 */
export function parseCredentialDocument(text: string, source: string, now: Date): CredentialSet {
  const bad = (reason: string) => credentialsError('invalid', { source, reason });
  if (Buffer.byteLength(text) > MAX_DOCUMENT_BYTES) throw bad(`more than ${MAX_DOCUMENT_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad('not valid JSON');
  }
  if (!isObject(doc)) throw bad('expected a JSON object');
  const sts = doc['Credentials'];
  const aws = isObject(sts) ? sts : 'AccessKeyId' in doc ? doc : undefined;
  if (aws) {
    if (aws === doc && doc['Version'] !== 1) throw bad('AWS credential_process JSON needs "Version": 1');
    const known = new Set(['Version', 'AccessKeyId', 'SecretAccessKey', 'SessionToken', 'Expiration']);
    const extra = Object.keys(aws).find((k) => !known.has(k));
    if (extra) throw bad(`unexpected key ${JSON.stringify(extra.slice(0, 64))} in AWS credentials`);
    const values: Record<string, unknown> = { access_key_id: aws['AccessKeyId'], secret_access_key: aws['SecretAccessKey'] };
    if (aws['SessionToken'] !== undefined) values['session_token'] = aws['SessionToken'];
    if (aws['Expiration'] === undefined) throw bad('AWS credentials need an Expiration: only short-lived credentials are accepted');
    return credentialSet('aws', values, aws['Expiration'], source, now);
  }
  const values = doc['values'];
  if (!isObject(values)) throw bad('expected AWS credential_process JSON or {"provider", "expiration", "values": {...}}');
  const extra = Object.keys(doc).find((k) => !['version', 'provider', 'expiration', 'values'].includes(k));
  if (extra) throw bad(`unexpected key ${JSON.stringify(extra.slice(0, 64))}`);
  if (doc['version'] !== undefined && doc['version'] !== 1) throw bad('version must be 1');
  return credentialSet(doc['provider'], values, doc['expiration'], source, now);
}

/** Args of a `push-credentials` command: provider (default aws), expiration, then the fields. */
export function credentialSetFromArgs(args: Readonly<Record<string, string>>, source: string, now: Date): CredentialSet {
  const { provider = 'aws', expiration, ...values } = args;
  return credentialSet(provider, values, expiration, source, now);
}

/** The AWS SDKs' credential_process output (version 1). */
export function awsProcessJson(set: CredentialSet): Record<string, unknown> {
  return {
    Version: 1,
    AccessKeyId: set.values['access_key_id'],
    SecretAccessKey: set.values['secret_access_key'],
    ...(set.values['session_token'] !== undefined ? { SessionToken: set.values['session_token'] } : {}),
    Expiration: set.expiration.toISOString(),
  };
}

/** The provider-neutral form: the same fields the generic input takes. */
export function genericJson(set: CredentialSet): Record<string, unknown> {
  return { version: 1, provider: set.provider, expiration: set.expiration.toISOString(), values: { ...set.values } };
}

/** What may be logged about a set: never a value, only its shape. */
export function describeSet(set: CredentialSet): Record<string, unknown> {
  return { provider: set.provider, fields: Object.keys(set.values).sort(), expires: set.expiration.toISOString(), from: set.source };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
