// Forcing a full GC in every process of a Node contender: the flags that load
// gc-hook.mjs, and the signal-and-acknowledge round trip the memory axis uses.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { processTree } from './proc.mjs';

/** Node flags and environment that load the GC hook; file collects the acknowledgements. */
export function gcHook(env, name) {
  const file = join(env.logs, `gc-${name}-${env.tag}.txt`);
  writeFileSync(file, '');
  return { flags: ['--expose-gc', '--import', pathToFileURL(join(env.root, 'bench/lib/gc-hook.mjs')).href], env: { BENCH_GC_FILE: file }, file };
}

/** Acknowledged GCs per pid in the hook's file. */
function acks(file) {
  const n = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const pid = Number(line.split(' ')[0]);
    if (pid) n.set(pid, (n.get(pid) ?? 0) + 1);
  }
  return n;
}

/**
 * inst.gc(): signals every process of the contender's tree (a cluster's workers
 * hold the connections, not its primary) and resolves true once each one
 * acknowledged a finished GC; false after timeoutMs (a process without the hook never answers).
 */
export function withGc(inst, file, timeoutMs = 10000) {
  const asked = new Map();
  inst.gc = async () => {
    const pids = processTree(inst.proc.pid);
    for (const p of pids) {
      asked.set(p, (asked.get(p) ?? 0) + 1);
      try {
        process.kill(p, 'SIGWINCH');
      } catch {}
    }
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const done = acks(file);
      if (pids.every((p) => (done.get(p) ?? 0) >= asked.get(p))) return true;
      await sleep(20);
    }
    return false;
  };
  return inst;
}
