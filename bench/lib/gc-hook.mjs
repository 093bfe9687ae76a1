// Preloaded into the Node contenders (node --expose-gc --import this file):
// SIGWINCH runs a full GC and appends "<pid> <heapUsed>" to $BENCH_GC_FILE, so
// the bench can read RSS after a GC without touching the contender's own code.
// Cluster workers inherit the primary's execArgv and environment, so each of
// them loads this hook too and answers for itself (see gc.mjs).
// SIGWINCH because Node reserves SIGUSR1 for the inspector, the gateway
// reloads on SIGHUP and profiled runs use SIGUSR2 for heap snapshots.
import { appendFileSync } from 'node:fs';

const file = process.env.BENCH_GC_FILE;
if (file && typeof globalThis.gc === 'function') {
  process.on('SIGWINCH', () => {
    globalThis.gc();
    appendFileSync(file, `${process.pid} ${process.memoryUsage().heapUsed}\n`);
  });
}
