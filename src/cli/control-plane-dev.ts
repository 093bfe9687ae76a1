/**
 * `scheduler-gateway control-plane-dev`: the reference receiver for local
 * development, demos and tests. `serve` (the default) listens on HTTPS/WSS;
 * the other subcommands work on the same database, which the running server
 * polls, so a queued revocation reaches the connected gateway within a poll.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CliIo } from './io.js';
import { parseArgs, type FlagDecl } from './args.js';
import { GatewayError } from '../errors/base.js';
import { parse } from '../config/spec.js';
import { createLogger } from '../log/logger.js';
import { ReceiverDb } from '../control-plane-dev/receiver-db.js';
import { startReceiver } from '../control-plane-dev/receiver.js';
import { devTls } from '../control-plane-dev/dev-cert.js';
import { isLoopbackHost } from '../config/loopback.js';
import { parseCredentialDocument } from '../credentials/credential.js';
import { PUSH_COMMAND } from '../credentials/push-command.js';

const FLAGS: FlagDecl[] = [
  { flag: 'listen' }, { flag: 'db' }, { flag: 'tls-cert' }, { flag: 'tls-key' }, { flag: 'tls-dir' }, { flag: 'unsafe-public', boolean: true },
  { flag: 'cluster' }, { flag: 'credential-out' }, { flag: 'serial' }, { flag: 'reason' }, { flag: 'token' },
  { flag: 'wait' }, { flag: 'last' }, { flag: 'from' }, { flag: 'help', boolean: true },
];

const USAGE = `usage:
  scheduler-gateway control-plane-dev [serve] --listen 127.0.0.1:PORT --db FILE [--tls-cert PATH --tls-key PATH | --tls-dir DIR]
  scheduler-gateway control-plane-dev enroll --db FILE --cluster ID --credential-out FILE
  scheduler-gateway control-plane-dev revoke-cert --db FILE --cluster ID --serial HEX [--reason WORD] [--wait SECONDS]
  scheduler-gateway control-plane-dev revoke-token --db FILE --cluster ID --token ID|NAME [--wait SECONDS]
  scheduler-gateway control-plane-dev push-credentials --db FILE --cluster ID --from FILE|- [--wait SECONDS]
  scheduler-gateway control-plane-dev batches --db FILE [--cluster ID] [--last N]

  --listen ADDR          where the receiver listens (loopback unless --unsafe-public) (default: 127.0.0.1:8443)
  --db FILE              SQLite database: clusters, batches, samples, commands
  --tls-cert/--tls-key   server certificate and key (PEM); without them a development CA and certificate
                         are generated in --tls-dir (default: FILE.tls/) and the CA path is printed
  --credential-out FILE  enroll: where the new cluster credential is written (0600)
  --from FILE|-          push-credentials: short-lived credentials as JSON (AWS credential_process, STS
                         assume-role output, or {"provider","expiration","values"}); - reads stdin
  --wait SECONDS         revoke-*, push-credentials: wait until the gateway has applied the command (default: 0, just queue)
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, FLAGS);
  const sub = positionals[0] ?? 'serve';
  if (flags.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  if (typeof flags.db !== 'string') throw usage('--db FILE is required');
  const dbPath = resolve(io.cwd, flags.db);
  switch (sub) {
    case 'serve':
      return serve(dbPath, flags, io);
    case 'enroll':
      return enroll(dbPath, flags, io);
    case 'revoke-cert':
      if (typeof flags.serial !== 'string') throw usage('revoke-cert needs --serial HEX');
      return queue(dbPath, flags, io, 'revoke-certificate', { serial: flags.serial, reason: String(flags.reason ?? 'unspecified') });
    case 'revoke-token':
      if (typeof flags.token !== 'string') throw usage('revoke-token needs --token ID|NAME');
      return queue(dbPath, flags, io, 'revoke-token', { token: flags.token });
    case 'push-credentials':
      if (typeof flags.from !== 'string') throw usage('push-credentials needs --from FILE (or - for stdin)');
      return queue(dbPath, flags, io, PUSH_COMMAND, pushArgs(flags.from === '-' ? 0 : resolve(io.cwd, flags.from)));
    case 'batches':
      return batches(dbPath, flags, io);
    default:
      throw usage(`unknown subcommand '${sub}' (serve, enroll, revoke-cert, revoke-token, push-credentials, batches)`);
  }
}

async function serve(dbPath: string, flags: Record<string, unknown>, io: CliIo): Promise<number> {
  const listen = parse.endpoint()(flags.listen ?? '127.0.0.1:8443', '--listen');
  if (!isLoopbackHost(listen.host!) && !flags['unsafe-public']) throw usage(`--listen ${String(flags.listen)} is not loopback; this is a development receiver (pass --unsafe-public to insist)`);
  let certPem: string;
  let keyPem: string;
  if (typeof flags['tls-cert'] === 'string' || typeof flags['tls-key'] === 'string') {
    if (typeof flags['tls-cert'] !== 'string' || typeof flags['tls-key'] !== 'string') throw usage('--tls-cert and --tls-key go together');
    certPem = readFileSync(resolve(io.cwd, flags['tls-cert']), 'utf8');
    keyPem = readFileSync(resolve(io.cwd, flags['tls-key']), 'utf8');
  } else {
    const tls = await devTls(resolve(io.cwd, typeof flags['tls-dir'] === 'string' ? flags['tls-dir'] : `${dbPath}.tls`));
    ({ certPem, keyPem } = tls);
    io.stderr.write(`control-plane-dev: development CA at ${tls.caPath} (give it to gateways with --control-plane-ca)\n`);
  }
  const db = new ReceiverDb(dbPath);
  const log = createLogger({ stream: io.stderr });
  const receiver = await startReceiver({ listen, db, certPem, keyPem, log });
  io.stdout.write(`listening on https://${listen.host!.includes(':') ? `[${listen.host}]` : listen.host}:${receiver.port}\n`);
  await new Promise<void>((done) => {
    const stop = () => done();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await receiver.close();
  db.close();
  return 0;
}

function enroll(dbPath: string, flags: Record<string, unknown>, io: CliIo): number {
  if (typeof flags.cluster !== 'string') throw usage('enroll needs --cluster ID');
  if (typeof flags['credential-out'] !== 'string') throw usage('enroll needs --credential-out FILE');
  const db = new ReceiverDb(dbPath);
  try {
    const credential = db.enroll(flags.cluster);
    const out = resolve(io.cwd, flags['credential-out']);
    writeFileSync(out, credential + '\n', { mode: 0o600 });
    io.stdout.write(`enrolled cluster ${flags.cluster}; credential written to ${out} (pass it with --control-plane-credential)\n`);
    return 0;
  } finally {
    db.close();
  }
}

async function queue(dbPath: string, flags: Record<string, unknown>, io: CliIo, name: string, args: Record<string, string>): Promise<number> {
  if (typeof flags.cluster !== 'string') throw usage(`${name} needs --cluster ID`);
  const wait = flags.wait === undefined ? 0 : parse.number(0, 3600)(flags.wait, '--wait');
  const db = new ReceiverDb(dbPath);
  try {
    const id = db.enqueueCommand(flags.cluster, name, args);
    io.stdout.write(`queued ${name} ${id} for cluster ${flags.cluster}\n`);
    const deadline = Date.now() + wait * 1000;
    while (Date.now() < deadline) {
      const c = db.command(id);
      if (c && c.status !== 'pending') {
        io.stdout.write(`${c.status}: ${c.result}\n`);
        return c.status === 'applied' ? 0 : 1;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (wait > 0) {
      io.stderr.write(`control-plane-dev: ${id} still pending after ${wait} s (it stays queued until the gateway connects)\n`);
      return 1;
    }
    return 0;
  } finally {
    db.close();
  }
}

function batches(dbPath: string, flags: Record<string, unknown>, io: CliIo): number {
  const last = flags.last === undefined ? 1 : parse.int(1, 1_000_000)(flags.last, '--last');
  const db = new ReceiverDb(dbPath);
  try {
    for (const b of db.batches(typeof flags.cluster === 'string' ? flags.cluster : undefined, last)) io.stdout.write(b.body + '\n');
    return 0;
  } finally {
    db.close();
  }
}

/** Validated here too, so a bad document is refused before it is queued; values are never printed. */
function pushArgs(from: string | 0): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(from, 'utf8');
  } catch (e) {
    throw usage(`--from ${from === 0 ? '-' : from}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const set = parseCredentialDocument(text, from === 0 ? 'stdin' : from, new Date());
  return { provider: set.provider, expiration: set.expiration.toISOString(), ...set.values };
}

function usage(message: string): GatewayError {
  return new GatewayError('GW_USAGE', message);
}
