/**
 * The client side of the load runs, as its own process so the gateway and
 * its load do not share an event loop (or a descriptor limit). Config is one
 * JSON object in argv[2]; results are JSON lines on stdout.
 *
 *   mode "soak": for durationMs, `churn` slots each connect (mutual TLS),
 *     send one message, read its echo, close and go again; `longLived`
 *     connections stay open and send a message every intervalMs, checking
 *     each echo byte for byte. Progress every 5 s, a summary at the end.
 *   mode "hold": open `hold` connections (at most `concurrency` handshakes at
 *     a time), confirm each with an echo, then `extra` more that the
 *     gateway's limit must refuse; keep them for holdMs, then check how many
 *     are still alive and close everything.
 */
import { connect, type TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pack } from 'msgpackr';
import { message, HANDSHAKE } from '../wire/wire-helpers.js';

interface Config {
  mode: 'soak' | 'hold';
  port: number;
  ca: string;
  cert: string;
  key: string;
  durationMs?: number;
  churn?: number;
  longLived?: number;
  intervalMs?: number;
  messageBytes?: number;
  hold?: number;
  extra?: number;
  concurrency?: number;
  holdMs?: number;
}

const cfg = JSON.parse(process.argv[2]!) as Config;
const tlsOpts = { host: '127.0.0.1', port: cfg.port, ca: readFileSync(cfg.ca), cert: readFileSync(cfg.cert), key: readFileSync(cfg.key), servername: 'localhost' };
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
// Every sleep here paces or staggers the load, or is the hold being measured: none waits for an event.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Real Dask framing, so the gateway's wire inspection (on by default) runs on every byte of the load.
const frame0 = (v: unknown) => Buffer.from(pack(v));
const prelude = (id: number) => Buffer.concat([message([frame0(HANDSHAKE)]), message([frame0({ op: 'register-client', client: `Client-load-${id}`, reply: false })])]);
const heartbeat = (payload: Buffer) => message([frame0({ op: 'heartbeat-client' }), payload]);
let ids = 0;

/** Connects, sends `msg`, resolves once the same bytes came back (anything else rejects); keeps the socket open. */
function open(msg: Buffer, timeoutMs = 30_000): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect(tlsOpts, () => s.write(msg));
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => { s.destroy(); reject(new Error('timeout')); }, timeoutMs);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < msg.length) return;
      clearTimeout(timer);
      s.off('data', onData);
      // A refusal in Dask's framing is data too, but not the echo.
      if (got.subarray(0, msg.length).equals(msg)) resolve(s);
      else { s.destroy(); reject(new Error('not_an_echo')); }
    };
    s.on('data', onData);
    s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); reject(new Error(e.code ?? e.message)); });
    s.on('close', () => { clearTimeout(timer); reject(new Error('closed')); });
  });
}

function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1;
}

async function soak(): Promise<void> {
  const until = Date.now() + cfg.durationMs!;
  const size = cfg.messageBytes ?? 1024;
  const stats = { churned: 0, churnFailed: {} as Record<string, number>, longMessages: 0, longBytes: 0, longMismatches: 0, longDropped: 0, longOpened: 0 };
  const lat: number[] = [];
  const long: TLSSocket[] = [];
  // Long-lived first: open them all, then start traffic on each.
  await Promise.all(Array.from({ length: cfg.longLived ?? 0 }, async (_, i) => {
    await sleep(i * 5);
    try {
      const s = await open(prelude(ids++));
      stats.longOpened++;
      long.push(s);
    } catch (e) { bump(stats.churnFailed, `long_open_${(e as Error).message}`); }
  }));
  const longLoops = long.map(async (s) => {
    s.removeAllListeners('close');
    let alive = true;
    s.on('close', () => { alive = false; });
    while (alive && Date.now() < until) {
      const msg = heartbeat(randomBytes(size));
      const ok = await new Promise<boolean>((resolve) => {
        let buf = Buffer.alloc(0);
        const timer = setTimeout(() => { s.off('data', onData); resolve(false); }, 30_000);
        const onData = (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= msg.length) { clearTimeout(timer); s.off('data', onData); resolve(buf.subarray(0, msg.length).equals(msg)); }
        };
        s.on('data', onData);
        s.write(msg);
      });
      if (!alive) break;
      if (ok) { stats.longMessages++; stats.longBytes += msg.length; } else stats.longMismatches++;
      await sleep(cfg.intervalMs ?? 100);
    }
    if (!alive) stats.longDropped++;
    s.end();
  });
  const churners = Array.from({ length: cfg.churn ?? 0 }, async (_, i) => {
    await sleep((i * 7) % 2000);
    while (Date.now() < until) {
      const t0 = performance.now();
      try {
        const s = await open(Buffer.concat([prelude(ids++), heartbeat(randomBytes(256))]));
        lat.push(performance.now() - t0);
        stats.churned++;
        s.end();
      } catch (e) {
        bump(stats.churnFailed, (e as Error).message);
        await sleep(200);
      }
      await sleep(Math.random() * 500);
    }
  });
  const progress = setInterval(() => out({ event: 'progress', ...stats, t: Date.now() }), 5_000);
  await Promise.all([...longLoops, ...churners]);
  clearInterval(progress);
  lat.sort((a, b) => a - b);
  const q = (p: number) => Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? 0);
  out({ event: 'done', ...stats, churnP50Ms: q(0.5), churnP99Ms: q(0.99) });
}

async function hold(): Promise<void> {
  const held: TLSSocket[] = [];
  const failed: Record<string, number> = {};
  let next = 0;
  const started = Date.now();
  const target = cfg.hold!;
  await Promise.all(Array.from({ length: cfg.concurrency ?? 200 }, async () => {
    while (next < target) {
      next++;
      try { held.push(await open(prelude(ids++), 60_000)); } catch (e) { bump(failed, (e as Error).message); }
      if (held.length % 1000 === 0) out({ event: 'progress', held: held.length });
    }
  }));
  let dropped = 0;
  for (const s of held) s.once('close', () => { dropped++; });
  out({ event: 'held', held: held.length, failed, ms: Date.now() - started });
  // Beyond the limit: each must be refused cleanly (closed without an echo), quickly.
  const extra = await Promise.all(Array.from({ length: cfg.extra ?? 0 }, async () => {
    const t0 = Date.now();
    try { (await open(prelude(ids++), 20_000)).destroy(); return { accepted: true, ms: Date.now() - t0 }; } catch (e) { return { accepted: false, why: (e as Error).message, ms: Date.now() - t0 }; }
  }));
  out({ event: 'extra', accepted: extra.filter((x) => x.accepted).length, refused: extra.filter((x) => !x.accepted).length, maxMs: Math.max(0, ...extra.map((x) => x.ms)), why: [...new Set(extra.filter((x) => !x.accepted).map((x) => x.why))] });
  await sleep(cfg.holdMs ?? 5_000);
  // Still alive after the excess was refused: every held connection echoes once more.
  let echoed = 0;
  await Promise.all(held.map((s) => new Promise<void>((resolve) => {
    if (s.destroyed) return resolve();
    const timer = setTimeout(() => resolve(), 30_000);
    s.once('data', () => { echoed++; clearTimeout(timer); resolve(); });
    s.write(heartbeat(Buffer.from('again')));
  })));
  out({ event: 'checked', held: held.length, echoedAgain: echoed, dropped });
  for (const s of held) s.destroy();
  out({ event: 'done' });
}

(cfg.mode === 'soak' ? soak() : hold()).then(() => process.exit(0), (e: unknown) => { out({ event: 'error', error: String(e) }); process.exit(1); });
