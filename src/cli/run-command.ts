/**
 * Runs one command the way the binary does: a GatewayError becomes one line
 * on stderr and its exit code (2); anything else is an internal error (1)
 * with its stack. Shared by bin.ts and the tests that run commands in-process.
 */
import { isGatewayError } from '../errors/base.js';
import type { CliIo, CommandMain } from './io.js';

export async function runCommand(name: string, main: CommandMain, argv: string[], io: CliIo): Promise<number> {
  try {
    return await main(argv, io);
  } catch (e) {
    if (isGatewayError(e)) {
      io.stderr.write(`scheduler-gateway ${name}: ${e.message} [${e.code}]\n`);
      return e.exitCode;
    }
    io.stderr.write(`scheduler-gateway ${name}: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}
