/**
 * A private build of the CLI for tests that spawn the real binary (exit
 * codes, concurrent processes). Compiled into test/artifacts/ (git-ignored,
 * inside the repository so node_modules resolves) and removed afterwards.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function buildCli(t: { teardown(fn: () => void): void }): string {
  const out = join(REPO, 'test', 'artifacts', `pki-cli-${process.pid}`);
  mkdirSync(out, { recursive: true });
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // Other areas' work in progress may not type-check; tsc still emits, and only the certs path must be whole.
  const r = spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'tsconfig.json'), '--outDir', out],
    { encoding: 'utf8', timeout: 300_000 });
  const bin = join(out, 'cli', 'bin.js');
  if (!existsSync(bin) || !existsSync(join(out, 'cli', 'certs.js'))) throw new Error(`tsc produced no CLI:\n${r.stdout}${r.stderr}`);
  return bin;
}
