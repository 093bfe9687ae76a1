// Everything the bench needs before measuring: Debian prerequisites, the C
// backend and load generator, the gateway build, and a description of the
// machine and the versions under test.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { runCommand } from './proc.mjs';

function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

/** Installs what is missing with apt-get (root only); returns the tool paths. */
export async function ensurePrereqs(log) {
  const missing = [];
  if (!which('cc')) missing.push('build-essential');
  if (!existsSync('/usr/include/openssl/ssl.h')) missing.push('libssl-dev');
  if (!which('haproxy')) missing.push('haproxy');
  if (!which('stunnel4') && !which('stunnel')) missing.push('stunnel4');
  if (!which('openssl')) missing.push('openssl');
  if (missing.length) {
    if (process.getuid?.() !== 0 || !which('apt-get')) {
      throw new Error(`missing prerequisites: ${missing.join(' ')} (install them with apt-get)`);
    }
    log(`installing ${missing.join(' ')} with apt-get`);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    let r = await runCommand('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env, timeoutMs: 600000 });
    if (r.code !== 0) {
      await runCommand('apt-get', ['update'], { env, timeoutMs: 600000 });
      r = await runCommand('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env, timeoutMs: 600000 });
    }
    if (r.code !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed: ${r.stderr.slice(-400)}`);
  }
  return { haproxy: which('haproxy'), stunnel: which('stunnel4') ?? which('stunnel'), cc: which('cc') };
}

const newer = (src, out) => !existsSync(out) || src.some((s) => statSync(s).mtimeMs > statSync(out).mtimeMs);

/** Compiles the C tools into binDir when their sources changed. */
export function buildTools(root, binDir) {
  mkdirSync(binDir, { recursive: true });
  const cdir = join(root, 'bench/c');
  const header = join(cdir, 'dask_frames.h');
  const out = {};
  for (const [name, libs] of [['backend', []], ['loadgen', ['-lssl', '-lcrypto']]]) {
    const src = join(cdir, `${name}.c`);
    out[name] = join(binDir, name);
    if (newer([src, header], out[name])) {
      execFileSync('cc', ['-O2', '-Wall', '-o', out[name], src, ...libs], { stdio: ['ignore', 'inherit', 'inherit'] });
    }
  }
  return out;
}

function newestMtime(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds dist/ when it is missing or older than src/ (tsc emits even if others' files have type errors). */
export async function buildGateway(root, log) {
  const bin = join(root, 'dist/cli/bin.js');
  if (existsSync(bin) && statSync(bin).mtimeMs >= newestMtime(join(root, 'src'))) return;
  log('building the gateway (tsc)');
  const r = await runCommand(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, timeoutMs: 300000 });
  if (!existsSync(bin)) throw new Error(`gateway build produced no dist/cli/bin.js: ${r.stdout.slice(-400)}`);
  if (r.code !== 0) log(`tsc reported errors (output still emitted): ${r.stdout.split('\n').slice(0, 3).join(' / ')}`);
}

function firstLine(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch (e) {
    return String(e.stdout ?? e.stderr ?? '').split('\n')[0].trim() || 'unknown';
  }
}

function stunnelVersion(path) {
  // stunnel prints its banner on stderr, after an unrelated first line.
  const r = spawnSync(path, ['-version'], { encoding: 'utf8' });
  return /stunnel \S+/.exec(`${r.stdout}${r.stderr}`)?.[0] ?? 'unknown';
}

export function nofileLimit() {
  const m = /Max open files\s+(\d+)\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : 1024;
}

export function machineInfo() {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  return {
    nproc: firstLine('nproc', []),
    cpu,
    kernel: `${os.type()} ${os.release()}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    'open files limit': nofileLimit(),
    'load average at start': os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

export function versions(root, bin) {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {}
  return {
    node: `${process.version} (OpenSSL ${process.versions.openssl})`,
    openssl: firstLine('openssl', ['version']),
    haproxy: bin.haproxy ? firstLine(bin.haproxy, ['-v']) : 'absent',
    stunnel: bin.stunnel ? stunnelVersion(bin.stunnel) : 'absent',
    'dask distributed': firstLine('/usr/bin/python3', ['-c', 'import distributed; print(distributed.__version__)']),
    'gateway commit': commit,
  };
}
