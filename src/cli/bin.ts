#!/usr/bin/env node
/**
 * Entry point of the `scheduler-gateway` binary: dispatches to one command
 * module, loaded lazily so `certs list` does not pay for the proxy stack.
 * Any GatewayError becomes one line on stderr and exit code 2.
 */
import { processIo, type CommandMain } from './io.js';
import { runCommand } from './run-command.js';
import { survivesWriteErrors } from '../log/logger.js';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ main: CommandMain }> }> = {
  run: { summary: 'run the gateway (8786 mTLS terminator, 8787 dashboard, telemetry)', load: () => import('./run.js') },
  certs: { summary: 'manage the cluster PKI: init, issue, list, revoke', load: () => import('./certs.js') },
  tokens: { summary: 'manage dashboard access tokens: create, list, revoke', load: () => import('./tokens.js') },
  policy: { summary: 'check a policy file or explain a decision', load: () => import('./policy.js') },
  telemetry: { summary: 'preview the next telemetry batch', load: () => import('./telemetry.js') },
  'control-plane-dev': { summary: 'run the reference control-plane receiver (development)', load: () => import('./control-plane-dev.js') },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(20)} ${c.summary}`);
  return `usage: scheduler-gateway <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'scheduler-gateway <command> --help' for a command's options.\n`;
}

export async function dispatch(argv: string[]): Promise<number> {
  // A reader that went away (`| head`, a dead log shipper) or a full disk must not kill a running gateway.
  survivesWriteErrors(process.stdout);
  survivesWriteErrors(process.stderr);
  const io = processIo();
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.stderr.write(`scheduler-gateway: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  return runCommand(name, (argv, cmdIo) => cmd.load().then((mod) => mod.main(argv, cmdIo)), rest, io);
}

dispatch(process.argv.slice(2)).then(
  (code) => {
    // Commands that start servers resolve only when they have shut down.
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`scheduler-gateway: ${String(e)}\n`);
    process.exitCode = 1;
  },
);
