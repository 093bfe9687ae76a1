import t from 'tap';
import { parsePrometheusText } from '../../src/telemetry/prom-parse.js';
import { GatewayError } from '../../src/errors/base.js';

// Lines from the 2022.12.1 scheduler's /metrics, as curl captured them.
const DASK = `# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 288.0
python_gc_objects_collected_total{generation="1"} 408.0
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="11",patchlevel="2",version="3.11.2"} 1.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.79566560562e+09
# HELP dask_scheduler_tasks_suspicious_total Total number of times a task has been marked suspicious
# TYPE dask_scheduler_tasks_suspicious_total counter
dask_scheduler_tasks_suspicious_total{task_prefix_name="lambda"} 0.0
# HELP dask_scheduler_tasks_forgotten_total Total number of processed tasks no longer in memory\\nNote: Task groups ...
# TYPE dask_scheduler_tasks_forgotten_total counter
dask_scheduler_tasks_forgotten_total 0.0
# TYPE dask_scheduler_tasks gauge
dask_scheduler_tasks{state="memory"} 0.0
dask_scheduler_tasks{state="no-worker"} 0.0
`;

t.test('parses the scheduler output: names, labels, values, families and types', async (t) => {
  const p = parsePrometheusText(DASK);
  t.equal(p.samples.length, 8);
  const info = p.samples.find((s) => s.name === 'python_info')!;
  t.same({ ...info.labels }, { implementation: 'CPython', major: '3', minor: '11', patchlevel: '2', version: '3.11.2' });
  t.equal(info.type, 'gauge');
  t.equal(p.samples.find((s) => s.name === 'process_start_time_seconds')!.value, 1795665605.62);
  t.equal(p.families.get('dask_scheduler_tasks_forgotten_total')!.help, 'Total number of processed tasks no longer in memory\nNote: Task groups ...');
  t.equal(p.samples.find((s) => s.name === 'dask_scheduler_tasks_suspicious_total')!.type, 'counter');
});

t.test('histogram samples belong to their family and keep le', async (t) => {
  const p = parsePrometheusText(`# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.3\nh_count 2\n`);
  t.same(p.samples.map((s) => [s.family, s.name, s.type]), [['h', 'h_bucket', 'histogram'], ['h', 'h_bucket', 'histogram'], ['h', 'h_sum', 'histogram'], ['h', 'h_count', 'histogram']]);
});

t.test('special values are case-insensitive, as in Prometheus (prom-client writes "Nan")', async (t) => {
  const p = parsePrometheusText('a Nan\nb inf\nc -INF\nd +Infinity\n');
  t.ok(Number.isNaN(p.samples[0]!.value));
  t.same(p.samples.slice(1).map((s) => s.value), [Infinity, -Infinity, Infinity]);
});

t.test('accepts special values, escapes, timestamps, blank lines and CRLF', async (t) => {
  const p = parsePrometheusText('a NaN\r\nb +Inf\nc -Inf 1700000000000\n\nd{x="q\\"uo\\\\te\\nnl"} 1e-3\n# a plain comment\n');
  t.ok(Number.isNaN(p.samples[0]!.value));
  t.equal(p.samples[1]!.value, Infinity);
  t.equal(p.samples[2]!.value, -Infinity);
  t.equal(p.samples[3]!.labels['x'], 'q"uo\\te\nnl');
  t.equal(p.samples[3]!.value, 0.001);
});

t.test('label names like __proto__ are plain keys, not prototype pollution', async (t) => {
  const p = parsePrometheusText('m{__proto__="x",constructor="y"} 1\n');
  const labels = p.samples[0]!.labels;
  t.equal(Object.getPrototypeOf(labels), null);
  t.equal(labels['__proto__'], 'x');
  t.equal(({} as Record<string, unknown>)['x'], undefined);
});

const HOSTILE: [string, string, RegExp][] = [
  ['an unterminated label value', 'm{a="x} 1\n', /unterminated label value/],
  ['a missing value', 'm{a="x"}\n', /expected a value/],
  ['a non-numeric value', 'm 12abc\n', /invalid sample value/],
  ['a hex value', 'm 0x10\n', /invalid sample value/],
  ['an invalid metric name', '1m 1\n', /invalid metric name/],
  ['an invalid label name', 'm{1a="x"} 1\n', /invalid label name/],
  ['an unknown escape', 'm{a="\\t"} 1\n', /invalid escape/],
  ['a duplicate label', 'm{a="1",a="2"} 1\n', /duplicate label a/],
  ['a duplicate series', 'm{a="1"} 1\nm{a="1"} 2\n', /duplicate series/],
  ['garbage after the value', 'm 1 2 3\n', /expected a value/],
  ['an unknown type', '# TYPE m bogus\nm 1\n', /unknown metric type/],
  ['a second TYPE', '# TYPE m gauge\n# TYPE m gauge\n', /second TYPE/],
  ['a TYPE after samples', 'm 1\n# TYPE m gauge\n', /TYPE for m after its samples/],
  ['a second HELP', '# HELP m a\n# HELP m b\n', /second HELP/],
  ['a NUL byte', 'm 1\nn\0 1\n', /NUL byte/],
  ['a missing comma', 'm{a="1" b="2"} 1\n', /expected ',' or '}'/],
  ['a missing quote', 'm{a=1} 1\n', /expected '"'/],
];

for (const [what, text, message] of HOSTILE) {
  t.test(`refuses ${what} with a GatewayError naming the line`, async (t) => {
    const err = t.throws(() => parsePrometheusText(text)) as GatewayError;
    t.type(err, GatewayError);
    t.equal(err.code, 'GW_TELEMETRY_PROM_PARSE');
    t.match(err.message, /^metrics text line \d+: /);
    t.match(err.message, message);
  });
}

t.test('bounds every dimension: bytes, lines, samples, labels, value length', async (t) => {
  const code = (fn: () => unknown) => (t.throws(fn) as GatewayError).code;
  t.equal(code(() => parsePrometheusText('m 1\n'.repeat(100), { maxBytes: 100 })), 'GW_TELEMETRY_PROM_TOO_LARGE');
  t.equal(code(() => parsePrometheusText('\n'.repeat(50), { maxLines: 10 })), 'GW_TELEMETRY_PROM_TOO_LARGE');
  t.equal(code(() => parsePrometheusText(Array.from({ length: 20 }, (_, i) => `m{i="${i}"} 1`).join('\n'), { maxSamples: 10 })), 'GW_TELEMETRY_PROM_TOO_LARGE');
  const manyLabels = `m{${Array.from({ length: 40 }, (_, i) => `l${i}="x"`).join(',')}} 1`;
  t.match((t.throws(() => parsePrometheusText(manyLabels)) as Error).message, /more than 32 labels/);
  t.match((t.throws(() => parsePrometheusText(`m{a="${'x'.repeat(2000)}"} 1`)) as Error).message, /longer than 1024/);
  t.match((t.throws(() => parsePrometheusText(`${'m'.repeat(300)} 1`)) as Error).message, /invalid metric name/);
});

t.test('error messages quote hostile input only briefly', async (t) => {
  const err = t.throws(() => parsePrometheusText(`m ${'9'.repeat(100)}x\n`)) as Error;
  t.ok(err.message.length < 120, err.message);
});

t.test('random garbage never escapes as anything but a GatewayError', async (t) => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const alphabet = 'm{}="\\,# \n\tab0.9e+-_:TYPEHELPNaInf';
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const text = Array.from({ length: 1 + Math.floor(rand() * 60) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    try {
      parsePrometheusText(text);
    } catch (e) {
      if (!(e instanceof GatewayError)) throw e;
      refused++;
    }
  }
  t.ok(refused > 0, `${refused} of 2000 random inputs were refused cleanly`);
});
