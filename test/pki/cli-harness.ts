/**
 * Runs `certs` in-process the way src/cli/bin.ts does (a GatewayError is one
 * line on stderr and its exit code), and fingerprints a directory so a test
 * can prove a failed command changed nothing on disk.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/certs.js';
import { runCli, type CliResult } from '../helpers/cli.js';

export type { CliResult };

export function runCerts(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd: string }): Promise<CliResult> {
  return runCli('certs', main, argv, opts);
}

/** Paths, modes and contents of everything under dir ('absent' if it does not exist). */
export function fingerprint(dir: string): string {
  if (!existsSync(dir)) return 'absent';
  const h = createHash('sha256');
  const walk = (d: string, rel: string): void => {
    const st = lstatSync(d);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isDirectory()) {
      for (const name of readdirSync(d).sort()) walk(join(d, name), `${rel}/${name}`);
    } else {
      h.update(readFileSync(d));
    }
  };
  walk(dir, '.');
  return h.digest('hex');
}
