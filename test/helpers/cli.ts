/**
 * Runs a scheduler-gateway command in-process, through the same error path as
 * the binary (src/cli/run-command.ts), capturing stdout and stderr.
 */
import { PassThrough } from 'node:stream';
import type { CommandMain } from '../../src/cli/io.js';
import { runCommand } from '../../src/cli/run-command.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(name: string, main: CommandMain, argv: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (b: Buffer) => { stdout += b.toString(); });
  err.on('data', (b: Buffer) => { stderr += b.toString(); });
  const code = await runCommand(name, main, argv, { stdout: out, stderr: err, env: opts.env ?? {}, cwd: opts.cwd });
  // Let the PassThrough 'data' events of the last writes land.
  await new Promise((r) => setImmediate(r));
  return { code, stdout, stderr };
}
