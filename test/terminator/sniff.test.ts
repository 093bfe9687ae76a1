import t from 'tap';
import { HTTP_EXPLANATION, sniff } from '../../src/terminator/sniff.js';
import { LISTENER_HANDSHAKE } from '../../src/wire/reply.js';

const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');
// The 2022.12.1 nanny's handshake as captured (L=61, n=1, len_0=45).
const DASK_HANDSHAKE = hex('3d00000000000000 0100000000000000 2d00000000000000 83ab636f6d7072657373696f6ea36c7a34');
const CLIENT_HELLO_START = hex('16 0301 0200 01 0001fc 0303');

t.test('a TLS handshake record is recognised from its first two bytes', async (t) => {
  t.equal(sniff(CLIENT_HELLO_START), 'tls');
  t.equal(sniff(CLIENT_HELLO_START.subarray(0, 2)), 'tls');
  t.equal(sniff(CLIENT_HELLO_START.subarray(0, 1)), 'need_more', 'one byte could still be anything');
});

t.test('HTTP methods are recognised, and their prefixes wait for more bytes', async (t) => {
  for (const m of ['GET / HTTP/1.1\r\n', 'POST /x HTTP/1.1', 'HEAD / HTTP/1.0', 'OPTIONS * HTTP/1.1', 'PRI * HTTP/2.0', 'CONNECT a:1 HTTP/1.1']) {
    t.equal(sniff(Buffer.from(m)), 'http', m.slice(0, m.indexOf(' ')));
  }
  t.equal(sniff(Buffer.from('GE')), 'need_more');
  t.equal(sniff(Buffer.from('GET')), 'need_more', 'the space is part of the method match');
  t.equal(sniff(Buffer.from('GETX / HTTP/1.1')), 'garbage');
});

t.test('a plaintext Dask prelude is recognised, at every split of the first 16 bytes', async (t) => {
  t.equal(sniff(DASK_HANDSHAKE), 'dask_plaintext');
  for (let i = 1; i < 16; i++) t.equal(sniff(DASK_HANDSHAKE.subarray(0, i)), 'need_more', `${i} bytes`);
  t.equal(sniff(LISTENER_HANDSHAKE), 'dask_plaintext', 'the probe we send is itself a valid Dask message');
});

t.test('a Dask-looking prelude with impossible lengths is garbage', async (t) => {
  const zeroFrames = Buffer.from(DASK_HANDSHAKE);
  zeroFrames.writeUInt32LE(0, 8);
  t.equal(sniff(zeroFrames), 'garbage', 'n = 0');
  const shortL = Buffer.from(DASK_HANDSHAKE);
  shortL.writeUInt32LE(8, 0);
  t.equal(sniff(shortL), 'garbage', 'L smaller than its own prelude');
  const huge = Buffer.from(DASK_HANDSHAKE);
  huge.writeUInt32LE(0xffffffff, 4);
  t.equal(sniff(huge), 'garbage', 'L above 2^53');
  t.equal(sniff(Buffer.from('0000000000000001', 'hex')), 'garbage', 'top byte of L set: decided at 8 bytes');
});

t.test('random bytes never throw and always classify within 16 bytes', async (t) => {
  let undecided = 0;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.alloc(16);
    for (let j = 0; j < 16; j++) b[j] = Math.floor(Math.random() * 256);
    if (sniff(b) === 'need_more') undecided++;
  }
  t.equal(undecided, 0);
});

t.test('the HTTP explanation is a complete response with a one-line body', async (t) => {
  const [head, body] = HTTP_EXPLANATION.split('\r\n\r\n');
  t.match(head, /^HTTP\/1\.1 400 /);
  t.match(head, /Connection: close/);
  t.equal(body!.trim().split('\n').length, 1);
});
