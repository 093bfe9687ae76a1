/**
 * The differential oracle (docs/security.md, "What the scheduler reads"):
 * every message a Dask scheduler reads from the gateway is one the gateway
 * decoded, with the same content.
 *
 * 100,000 generated adversarial streams (ORACLE_CASES to change) go through
 * the gateway's parser in random chunks; the bytes it forwards are read by
 * the real Dask reader and decoder of each supported version
 * (dask_reader.py). For every stream, the scheduler must read exactly the
 * messages the gateway accepted, in order, with the same frame 0 bytes and
 * the same facts for every field policy reads; a stream the gateway refused
 * must end, for the scheduler, before the refused message. 1% of the streams
 * (those under 4 KiB) are also split at every offset, and must give the same
 * result each time.
 *
 * A control shows the oracle can fail: the same streams forwarded the way
 * the gateway did before canonical framing (the original bytes) desynchronise
 * Dask 2022.12's reader.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DASK_2022, DASK_VERSIONS, requireDask, type DaskVersion } from '../helpers/dask.js';
import { gatewayView, randomSplit, type GatewayView, type MessageFacts } from './gateway-view.js';
import { prng, StreamGenerator } from './streams.js';

const CASES = Number(process.env.ORACLE_CASES ?? 100_000);
const SEED = Number(process.env.ORACLE_SEED ?? 20261207);
const CONTROL_CASES = Math.min(CASES, 2_000);
const READER = fileURLToPath(new URL('./dask_reader.py', import.meta.url));

// 100,000 streams take about 5 minutes under coverage on a 2-core machine shared with another test file.
t.setTimeout(Math.max(300_000, CASES * 9));

interface PythonResult {
  id: number;
  messages: MessageFacts[];
  /** enum: the error is the scheduler failing to resolve an __Enum__ map (see KNOWN_ENUMS in src/wire/ops.ts). */
  error: { at: number; type: string; text: string; enum: boolean } | null;
}

/** Runs the version's reader over {id, bytes} cases; resolves with its results by id. */
async function readWithDask(v: DaskVersion, cases: Iterable<[number, Buffer]>, dir: string): Promise<Map<number, PythonResult>> {
  const input = join(dir, `cases-${v.id}-${Math.random().toString(36).slice(2)}.jsonl`);
  const lines: string[] = [];
  for (const [id, bytes] of cases) lines.push(JSON.stringify({ id, hex: bytes.toString('hex') }));
  writeFileSync(input, lines.join('\n') + '\n');
  const child = spawn(v.python, [READER], { stdio: ['pipe', 'pipe', 'pipe'] });
  createReadStream(input).pipe(child.stdin);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const results = new Map<number, PythonResult>();
  for await (const line of createInterface({ input: child.stdout })) {
    const r = JSON.parse(line) as PythonResult;
    results.set(r.id, r);
  }
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`dask_reader.py (${v.id}) exited ${code}: ${stderr}`);
  return results;
}

/**
 * Why the scheduler's reading differs from the gateway's, or null. One
 * failure is allowed where the gateway accepted: a 2022.12 scheduler cannot
 * resolve the enum 2026.7 clients send (dask.typing._NoDefault), so it drops
 * that message (and the connection) without running anything for it.
 */
function difference(view: GatewayView, py: PythonResult, allowEnumFailure: boolean): string | null {
  const upTo = Math.min(view.messages.length, py.messages.length);
  for (let i = 0; i < upTo; i++) {
    const a = JSON.stringify(view.messages[i]);
    const b = JSON.stringify(py.messages[i]);
    if (a !== b) return `message ${i}: gateway ${a} / scheduler ${b}`;
  }
  if (py.messages.length > view.messages.length) return `the scheduler read ${py.messages.length} messages, the gateway accepted ${view.messages.length}`;
  if (py.error !== null) {
    if (allowEnumFailure && py.error.enum && py.error.at < view.messages.length) return null;
    return `the scheduler failed at message ${py.error.at}: ${py.error.type}: ${py.error.text}`;
  }
  if (py.messages.length < view.messages.length) return `the scheduler read ${py.messages.length} messages, the gateway accepted ${view.messages.length}`;
  return null;
}

const versions = DASK_VERSIONS.filter((v) => requireDask(t, v));
if (versions.length > 0) {
  const dir = mkdtempSync(join(tmpdir(), 'gw-oracle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  const started = Date.now();
  const gen = new StreamGenerator(prng(SEED));
  const rand = prng(SEED + 1);
  const streams: Buffer[] = [];
  const views: GatewayView[] = [];
  let splitMismatch = 0;
  let everyOffsetStreams = 0;
  for (let id = 0; id < CASES; id++) {
    const stream = gen.stream();
    const view = gatewayView(stream, randomSplit(rand, 1 + Math.floor(rand() * 300)));
    streams.push(stream);
    views.push(view);
    if (id % 100 === 0 && stream.length <= 4096) {
      everyOffsetStreams++;
      const whole = JSON.stringify([view.messages, view.stopped, view.forwarded.toString('hex')]);
      for (let cut = 1; cut < stream.length; cut++) {
        let first = true;
        const again = gatewayView(stream, () => (first ? ((first = false), cut) : stream.length));
        if (JSON.stringify([again.messages, again.stopped, again.forwarded.toString('hex')]) !== whole) splitMismatch++;
      }
    }
  }
  const parsedMs = Date.now() - started;

  t.test(`the gateway parser reads the same at every chunking (${everyOffsetStreams} streams split at every offset)`, async (t) => {
    t.equal(splitMismatch, 0);
  });

  const accepted = views.reduce((s, v) => s + v.messages.length, 0);
  const refusedBy = new Map<string, number>();
  for (const v of views) if (v.stopped) refusedBy.set(v.stopped, (refusedBy.get(v.stopped) ?? 0) + 1);
  t.comment(`${CASES} streams (seed ${SEED}) parsed in ${parsedMs} ms: ${accepted} messages accepted; ${[...refusedBy.values()].reduce((a, b) => a + b, 0)} streams refused: ${[...refusedBy].sort().map(([c, n]) => `${c} ${n}`).join(', ')}`);

  t.test('the generator exercises every refusal class and accepts most messages', async (t) => {
    for (const code of ['GW_WIRE_LENGTH_MISMATCH', 'GW_WIRE_DUPLICATE_KEY', 'GW_WIRE_NON_STRING_KEY', 'GW_WIRE_MAGIC_FIELD', 'GW_WIRE_BAD_PLACEHOLDER', 'GW_WIRE_MALFORMED_FRAME0']) {
      t.ok((refusedBy.get(code) ?? 0) > 0, `${code}: ${refusedBy.get(code) ?? 0} streams`);
    }
    t.ok(accepted > CASES, `more messages accepted (${accepted}) than streams`);
  });

  const results = new Map<DaskVersion, Promise<Map<number, PythonResult>>>();
  for (const v of versions) results.set(v, readWithDask(v, views.map((view, id) => [id, view.forwarded] as [number, Buffer]), dir));

  for (const v of versions) {
    t.test(`Dask ${v.id} reads exactly what the gateway accepted, in ${CASES} adversarial streams`, async (t) => {
      const py = await results.get(v)!;
      const failures: string[] = [];
      let compared = 0;
      let pickled = 0;
      let enumFailures = 0;
      for (let id = 0; id < CASES; id++) {
        const r = py.get(id);
        if (!r) {
          failures.push(`stream ${id}: no result from the reader`);
          continue;
        }
        compared += Math.min(r.messages.length, views[id]!.messages.length);
        pickled += views[id]!.messages.filter((m) => m.maps.some((x) => x.pickled)).length;
        if (r.error?.enum) enumFailures++;
        const why = difference(views[id]!, r, !v.splitFraming);
        if (why) failures.push(`stream ${id} (seed ${SEED}): ${why}`);
      }
      t.comment(`Dask ${v.id}: ${compared} messages compared field by field, ${pickled} of them carrying a __Pickled__ placeholder; ${enumFailures} streams ended where the scheduler could not resolve an accepted enum`);
      t.same(failures.slice(0, 10), [], `${failures.length} streams differ`);
      if (v.splitFraming) t.equal(enumFailures, 0, 'this version resolves every enum the gateway accepts');
    });
  }

  if (versions.includes(DASK_2022)) {
    t.test('control: forwarding the original bytes, as before canonical framing, desynchronises Dask 2022.12', async (t) => {
      const cases: [number, Buffer][] = [];
      for (let id = 0; id < CONTROL_CASES; id++) cases.push([id, streams[id]!.subarray(0, views[id]!.consumed)]);
      const py = await readWithDask(DASK_2022, cases, dir);
      let differ = 0;
      for (const [id] of cases) if (difference(views[id]!, py.get(id)!, true) !== null) differ++;
      t.ok(differ > 0, `${differ} of ${CONTROL_CASES} streams are read differently by the scheduler than by the gateway`);
    });
  }
}
