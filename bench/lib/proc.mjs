// Child processes for the bench: spawn with logs on disk, wait for a port,
// read CPU time and RSS of a whole process tree from /proc, stop by pid.
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s on every supported kernel

const live = new Set();

/** Spawns cmd with stdout/stderr in logDir/<name>.{out,err}; the handle stops it with stop(). */
export function startProcess(name, cmd, args, { logDir, env, cwd, stdin = 'ignore' } = {}) {
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
  const out = createWriteStream(join(logDir, `${name}.out`));
  const err = createWriteStream(join(logDir, `${name}.err`));
  child.stdout.pipe(out);
  child.stderr.pipe(err);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(handle);
      resolve(exited);
    });
    child.on('error', (e) => {
      exited = { code: -1, signal: null, error: String(e) };
      live.delete(handle);
      resolve(exited);
    });
  });
  const handle = {
    name,
    child,
    pid: child.pid,
    get exited() {
      return exited;
    },
    exitPromise,
    /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
    async stop(graceMs = 3000) {
      if (exited) return exited;
      const tree = descendants(child.pid);
      child.kill('SIGTERM');
      const t = setTimeout(() => {
        for (const p of [child.pid, ...tree]) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {}
        }
      }, graceMs);
      await exitPromise;
      clearTimeout(t);
      for (const p of tree) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {}
      }
      return exited;
    },
  };
  live.add(handle);
  return handle;
}

/** Stops every process this module started and that is still alive (used on exit paths). */
export async function stopAll() {
  await Promise.all([...live].map((h) => h.stop(1000)));
}

/** Resolves once a TCP connect to 127.0.0.1:port succeeds; rejects at the deadline or if proc exits. */
export async function waitForPort(port, { timeoutMs = 20000, proc } = {}) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (proc?.exited) throw new Error(`${proc.name} exited (${JSON.stringify(proc.exited)}) before listening on ${port}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** A port that was free a moment ago (contenders like haproxy need a number up front). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]) };
  } catch {
    return null;
  }
}

/** All live descendants of pid (children, grandchildren...). */
export function descendants(pid) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(d);
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(Number(d));
  }
  const out = [];
  const stack = [pid];
  while (stack.length) {
    for (const c of children.get(stack.pop()) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

/** pid and its live descendants: a contender's whole process tree (cluster workers are children of the primary). */
export const processTree = (pid) => [pid, ...descendants(pid)];

/** CPU seconds (user + system, all threads) of pid and its live descendants. */
export function cpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const st = readStat(p);
    if (st) ticks += st.utime + st.stime;
  }
  return ticks / CLK_TCK;
}

/** CPU seconds the whole machine spent busy since boot (/proc/stat: everything but idle and iowait). */
export function machineBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
  return busy / CLK_TCK;
}

/**
 * Who used the machine during wall seconds on `cores` cores, as shares of
 * its capacity: the contender, the backend, the load generator, and the rest
 * of the measured machine-wide busy time (the bench itself and other users).
 */
export function cpuShares({ wall, cores, contender, backend, loadgen, machine }) {
  const cap = wall * cores;
  if (!(cap > 0)) return {};
  const other = Math.max(0, machine - contender - backend - loadgen);
  return {
    contender_share: contender / cap,
    backend_share: backend / cap,
    loadgen_share: loadgen / cap,
    other_share: other / cap,
    idle_share: Math.max(0, 1 - machine / cap),
  };
}

/** Resident set size in bytes of pid and its live descendants. */
export function rssBytes(pid) {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {}
  }
  return kb * 1024;
}

/** Threads of pid and its live descendants (null when none could be read). */
export function threadCount(pid) {
  let n = null;
  for (const p of processTree(pid)) {
    try {
      n = (n ?? 0) + Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {}
  }
  return n;
}

/** The inode of the socket listening on 127.0.0.1:port (/proc/net/tcp), or null. */
export function listenInode(port) {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[3] === '0A') return f[9];
  }
  return null;
}

/** Which of pids hold socket inode among their descriptors. */
export function socketHolders(inode, pids) {
  const target = `socket:[${inode}]`;
  return pids.filter((p) => {
    try {
      return readdirSync(`/proc/${p}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${p}/fd/${fd}`) === target;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

/**
 * Resolves once `workers` descendants of proc hold the socket listening on port
 * (a cluster primary hands the listening socket to each worker as it starts), so
 * an axis never starts with workers still booting; rejects at the deadline or if proc exits.
 */
export async function waitForWorkers(proc, port, workers, { timeoutMs = 30000 } = {}) {
  const end = Date.now() + timeoutMs;
  let holders = [];
  while (Date.now() < end) {
    if (proc.exited) throw new Error(`${proc.name} exited (${JSON.stringify(proc.exited)}) before its ${workers} workers listened`);
    const inode = listenInode(port);
    holders = inode ? socketHolders(inode, descendants(proc.pid)) : [];
    if (holders.length >= workers) return holders;
    await sleep(50);
  }
  throw new Error(`${proc.name}: ${holders.length} of ${workers} worker processes listening on ${port} after ${timeoutMs} ms`);
}

/** Runs a command to completion with a hard time limit; resolves {code, stdout, stderr, timedOut}. */
export function runCommand(cmd, args, { timeoutMs = 120000, env, cwd, input } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      resolve({ code: -1, stdout, stderr: stderr + String(e), timedOut });
    });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr, timedOut });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}
