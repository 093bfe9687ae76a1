/** One loopback predicate for every place that requires one, whatever the address's spelling. */
import t from 'tap';
import { isLoopbackHost } from '../../src/config/loopback.js';

t.test('every spelling of 127.0.0.0/8 and ::1 is loopback', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', '127.255.255.255', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.9.9.9', '::ffff:7f00:1', '[::ffff:127.0.0.1]', 'localhost', 'LOCALHOST']) {
    t.ok(isLoopbackHost(h), h);
  }
});

t.test('nothing else is, however it is spelled', async (t) => {
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '126.255.255.255', '::ffff:10.0.0.1', '::ffff:a00:1', '::2', 'example.com', 'localhost.example.com', '127.0.0.1.nip.io', '0177.0.0.1', '127.1', '2130706433', '', '[127.0.0.1]']) {
    t.notOk(isLoopbackHost(h), JSON.stringify(h));
  }
});

