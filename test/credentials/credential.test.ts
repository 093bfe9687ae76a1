import t from 'tap';
import { credentialSetFromArgs, parseCredentialDocument, awsProcessJson, genericJson, MAX_DOCUMENT_BYTES } from '../../src/credentials/credential.js';
import { awsConfigSnippet } from '../../src/pki/aws-config.js';
import { isGatewayError } from '../../src/errors/base.js';

const NOW = new Date('2026-11-26T06:00:00Z');
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY';
const aws = (o: Record<string, unknown> = {}) => ({ Version: 1, AccessKeyId: 'ASIAIOSFODNN7EXAMPLE', SecretAccessKey: SECRET, SessionToken: 'FwoGZXIvYXdzEJr//////////wEaDA==', Expiration: '2026-11-26T07:00:00Z', ...o });

t.test('the AWS credential_process shape is read into an aws set and written back unchanged', async (t) => {
  const set = parseCredentialDocument(JSON.stringify(aws()), 'file', NOW);
  t.equal(set.provider, 'aws');
  t.equal(set.expiration.toISOString(), '2026-11-26T07:00:00.000Z');
  t.same(awsProcessJson(set), { ...aws(), Expiration: '2026-11-26T07:00:00.000Z' });
});

t.test('STS assume-role output and the generic form are accepted too', async (t) => {
  const { Version: _v, ...inner } = aws();
  const sts = parseCredentialDocument(JSON.stringify({ Credentials: inner }), 'command', NOW);
  t.equal(sts.values['secret_access_key'], SECRET);
  const gen = parseCredentialDocument(JSON.stringify({ provider: 'gcp', expiration: '2026-11-26T06:30:00+00:00', values: { access_token: 'ya29.a0Af-token_value' } }), 'file', NOW);
  t.same(genericJson(gen), { version: 1, provider: 'gcp', expiration: '2026-11-26T06:30:00.000Z', values: { access_token: 'ya29.a0Af-token_value' } });
});

t.test('push-credentials args become a set; provider defaults to aws', async (t) => {
  const set = credentialSetFromArgs({ expiration: '2026-11-26T06:10:00Z', access_key_id: 'ASIAIOSFODNN7EXAMPLE', secret_access_key: SECRET }, 'control-plane:x', NOW);
  t.equal(set.provider, 'aws');
  t.equal(set.source, 'control-plane:x');
  t.notOk('SessionToken' in awsProcessJson(set), 'no session token field when none was given');
});

// Hostile or broken input: each row is refused with a reason naming the rule, and no message echoes the secret.
const refusals: Array<[string, string, RegExp]> = [
  ['not JSON, with the secret inside', `{"SecretAccessKey": "${SECRET}"`, /not valid JSON/],
  ['a JSON array', `["${SECRET}"]`, /expected a JSON object/],
  ['credential_process Version 2', JSON.stringify(aws({ Version: 2 })), /Version": 1/],
  ['no Expiration', JSON.stringify(aws({ Expiration: undefined })), /need an Expiration/],
  ['already expired', JSON.stringify(aws({ Expiration: '2026-11-26T05:59:59Z' })), /already passed/],
  ['more than 36 hours ahead', JSON.stringify(aws({ Expiration: '2026-11-28T00:00:00Z' })), /more than 36 hours/],
  ['an expiration without a zone', JSON.stringify(aws({ Expiration: '2026-11-26T07:00:00' })), /ISO 8601 time with a zone/],
  ['an expiration that is a number', JSON.stringify(aws({ Expiration: 1798268400 })), /ISO 8601/],
  ['a lower-case access key id', JSON.stringify(aws({ AccessKeyId: 'asiaiosfodnn7example' })), /access_key_id must be/],
  ['a secret with a newline', JSON.stringify(aws({ SecretAccessKey: SECRET + '\nX-Injected: 1' })), /secret_access_key must be/],
  ['a secret that is a number', JSON.stringify(aws({ SecretAccessKey: 12345 })), /secret_access_key must be/],
  ['an unknown key', JSON.stringify(aws({ Extra: SECRET })), /unexpected key "Extra"/],
  ['a __proto__ key', `{"provider":"x","expiration":"2026-11-26T07:00:00Z","values":{"__proto__":"${SECRET}"}}`, /not lower_snake_case/],
  ['a generic provider with upper case', JSON.stringify({ provider: 'GCP', expiration: '2026-11-26T07:00:00Z', values: { token: SECRET } }), /provider must be/],
  ['a generic value with a space', JSON.stringify({ provider: 'gcp', expiration: '2026-11-26T07:00:00Z', values: { token: `${SECRET} x` } }), /token must be/],
  ['seventeen fields', JSON.stringify({ provider: 'gcp', expiration: '2026-11-26T07:00:00Z', values: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}`, SECRET])) }), /1 to 16/],
  ['no fields', JSON.stringify({ provider: 'gcp', expiration: '2026-11-26T07:00:00Z', values: {} }), /1 to 16/],
  ['a document over 64 KiB', JSON.stringify(aws({ SessionToken: 'A'.repeat(MAX_DOCUMENT_BYTES) })), /more than 65536 bytes/],
  ['aws with a field it does not have', JSON.stringify({ provider: 'aws', expiration: '2026-11-26T07:00:00Z', values: { access_key_id: 'ASIAIOSFODNN7EXAMPLE', secret_access_key: SECRET, region: 'eu-west-1' } }), /no field region/],
];

for (const [what, input, reason] of refusals) {
  t.test(`refuses ${what} without echoing the value`, async (t) => {
    let err: unknown;
    try {
      parseCredentialDocument(input, 'file', NOW);
    } catch (e) {
      err = e;
    }
    t.ok(isGatewayError(err), 'a GatewayError');
    if (!isGatewayError(err)) return;
    t.equal(err.code, 'GW_CREDENTIALS_INVALID');
    t.match(err.message, reason);
    t.match(err.message, /^credentials from file: /);
    t.notOk(err.message.includes(SECRET) || err.message.includes(SECRET.slice(0, 12)), 'the message does not contain the secret');
  });
}

t.test('the AWS config snippet quotes paths the way botocore splits them, and brackets IPv6 hosts', async (t) => {
  const s = awsConfigSnippet({ certPath: '/data/my worker/w.pem', keyPath: "/data/it's/w-key.pem", caPath: '/data/ca.pem', host: '::1', port: 8789 });
  t.match(s, /^\[profile dask-worker\]$/m);
  t.match(s, `--cert '/data/my worker/w.pem' --key '/data/it'\\''s/w-key.pem' --cacert /data/ca.pem https://[::1]:8789/v1/credentials/aws`);
});
