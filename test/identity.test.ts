import t from 'tap';
import { formatSpiffe, isValidClusterId, parseSpiffe } from '../src/pki/identity.js';
import { parseSubjectAltName, normalizeSerial } from '../src/pki/peer-certificate.js';

t.test('parses each identity shape and rejects near misses', async (t) => {
  t.same(parseSpiffe('spiffe://c1/worker/w-1'), { cluster: 'c1', role: 'worker', name: 'w-1' });
  t.same(parseSpiffe('spiffe://c1/scheduler'), { cluster: 'c1', role: 'scheduler' });
  t.same(parseSpiffe('spiffe://c1/gateway'), { cluster: 'c1', role: 'gateway' });
  for (const bad of ['spiffe://c1/worker', 'spiffe://c1/scheduler/x', 'spiffe://C1/worker/a', 'http://c1/worker/a',
    'spiffe://c1/root/a', 'spiffe://c1/worker/a/b', 'spiffe:///worker/a', 'spiffe://c1/client/..', 'spiffe://c1/client/a b']) {
    t.equal(parseSpiffe(bad), undefined, bad);
  }
  t.equal(formatSpiffe({ cluster: 'c', role: 'admin', name: 'ann' }), 'spiffe://c/admin/ann');
});

t.test('cluster ids follow the 1-63 character alphabet', async (t) => {
  t.ok(isValidClusterId('a'));
  t.ok(isValidClusterId('a'.repeat(63)));
  t.notOk(isValidClusterId('a'.repeat(64)));
  t.notOk(isValidClusterId(''));
  t.notOk(isValidClusterId('Upper'));
  t.notOk(isValidClusterId('..'));
});

t.test('splits Node subjectAltName strings, honouring quoted entries', async (t) => {
  t.same(parseSubjectAltName('DNS:localhost, URI:spiffe://c/gateway'), [
    { type: 'DNS', value: 'localhost' }, { type: 'URI', value: 'spiffe://c/gateway' }]);
  t.same(parseSubjectAltName('URI:"spiffe://c/client/a, URI:spiffe://c/admin/x"'), [
    { type: 'URI', value: 'spiffe://c/client/a, URI:spiffe://c/admin/x' }]);
  t.same(parseSubjectAltName(undefined), []);
  t.equal(normalizeSerial('00:0A:bc'), 'abc');
  t.equal(normalizeSerial('00'), '0');
});
