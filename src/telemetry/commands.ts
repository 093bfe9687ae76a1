/**
 * Commands from the control plane, arriving on the telemetry connection.
 * Each is verified (signature by the cluster credential, cluster id, issued
 * time within a window, id not seen before), then dispatched by name through
 * an extensible table, audited, and answered with a command-result.
 *
 * Replay: ids of applied commands are kept on disk until their window has
 * passed, so the same signed message cannot be applied twice, even across a
 * restart. A command re-sent under the same id (the receiver re-signs on every
 * delivery attempt) is answered `ok, duplicate` without being applied again.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import type { Logger } from '../log/logger.js';
import type { RevocationSink } from '../runtime/context.js';
import { isGatewayError } from '../errors/base.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { telemetryError } from './errors.js';
import { COMMAND_WINDOW_MS, verifyCommandSignature, type CommandMessage, type CommandResultMessage } from './protocol.js';

export interface CommandHandler {
  /** Validates args and applies the command durably; throws a GatewayError to refuse. */
  apply(args: Readonly<Record<string, string>>, source: string): Promise<void>;
  /** What the audit line may show of the args; default all of them. Commands carrying secrets show only their shape. */
  auditArgs?(args: Readonly<Record<string, string>>): Record<string, unknown>;
}

export type CommandTable = ReadonlyMap<string, CommandHandler>;

const SERIAL = /^[0-9a-fA-F:]{1,128}$/;
const TOKEN_REF = /^[A-Za-z0-9._@-]{1,128}$/;
const REASON = /^[a-zA-Z]{1,32}$/;

/** The revocation commands; credential pushes (src/credentials/push-command.ts) join the same table. */
export function revocationCommands(sink: RevocationSink): Map<string, CommandHandler> {
  return new Map<string, CommandHandler>([
    ['revoke-certificate', {
      async apply(args, source) {
        const serial = args['serial'];
        const reason = args['reason'] ?? 'unspecified';
        if (!serial || !SERIAL.test(serial)) throw telemetryError('commandRejected', { reason: 'revoke-certificate needs a hex serial' });
        if (!REASON.test(reason)) throw telemetryError('commandRejected', { reason: 'revoke-certificate reason must be a word' });
        await sink.revokeSerial(serial, reason, source);
      },
    }],
    ['revoke-token', {
      async apply(args, source) {
        const token = args['token'];
        if (!token || !TOKEN_REF.test(token)) throw telemetryError('commandRejected', { reason: 'revoke-token needs a token id or name' });
        await sink.revokeToken(token, source);
      },
    }],
  ]);
}

export interface CommandProcessorOptions {
  readonly clusterId: string;
  readonly key: Buffer;
  readonly handlers: CommandTable;
  /** Where applied ids are remembered (inside the spool directory). */
  readonly seenFile: string;
  readonly log: Logger;
  readonly metrics: Pick<GatewayMetrics, 'controlCommandsTotal'>;
  readonly now: () => Date;
}

const MAX_SEEN = 10_000;

export class CommandProcessor {
  readonly #o: CommandProcessorOptions;
  readonly #seen: Map<string, number>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(o: CommandProcessorOptions, seen: Map<string, number>) {
    this.#o = o;
    this.#seen = seen;
  }

  static async open(o: CommandProcessorOptions): Promise<CommandProcessor> {
    const seen = new Map<string, number>();
    const text = await readFile(o.seenFile, 'utf8').catch(() => undefined);
    if (text !== undefined) {
      try {
        const doc = JSON.parse(text) as unknown;
        if (doc && typeof doc === 'object') for (const [id, exp] of Object.entries(doc)) if (typeof exp === 'number') seen.set(id, exp);
      } catch {
        // Losing the replay memory only matters inside the 5-minute window; say so and go on.
        o.log.error('telemetry_commands_seen_file_corrupt', { file: o.seenFile });
      }
    }
    return new CommandProcessor(o, seen);
  }

  handle(c: CommandMessage): Promise<CommandResultMessage> {
    const run = this.#queue.then(() => this.#handle(c));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #handle(c: CommandMessage): Promise<CommandResultMessage> {
    const { log, metrics } = this.#o;
    const refuse = (reason: string, result: string): CommandResultMessage => {
      metrics.controlCommandsTotal.inc({ type: this.#o.handlers.has(c.name) ? c.name : 'unknown', result });
      log.audit('telemetry_command_refused', { command_id: c.id, command: c.name, reason });
      return { type: 'command-result', id: c.id, ok: false, error: reason };
    };
    if (!verifyCommandSignature(this.#o.key, c)) return refuse('bad signature', 'bad_signature');
    if (c.cluster !== this.#o.clusterId) return refuse(`command for cluster ${c.cluster}`, 'wrong_cluster');
    const now = this.#o.now().getTime();
    const issued = Date.parse(c.issued);
    if (Math.abs(now - issued) > COMMAND_WINDOW_MS) return refuse('issued time outside the accepted window (check clocks)', 'stale');
    this.#prune(now);
    if (this.#seen.has(c.id)) {
      metrics.controlCommandsTotal.inc({ type: c.name, result: 'duplicate' });
      return { type: 'command-result', id: c.id, ok: true, duplicate: true };
    }
    const handler = this.#o.handlers.get(c.name);
    if (!handler) return refuse(`unknown command ${c.name}`, 'unknown');
    try {
      await handler.apply(c.args, `control-plane:${c.id}`);
    } catch (e) {
      const reason = isGatewayError(e) ? e.message : 'internal error';
      if (!isGatewayError(e)) log.error('telemetry_command_failed', { command_id: c.id, command: c.name, error: e });
      return refuse(reason, 'failed');
    }
    this.#seen.set(c.id, issued + COMMAND_WINDOW_MS);
    await this.#persist();
    metrics.controlCommandsTotal.inc({ type: c.name, result: 'applied' });
    log.audit('telemetry_command_applied', { command_id: c.id, command: c.name, args: handler.auditArgs ? handler.auditArgs(c.args) : c.args });
    return { type: 'command-result', id: c.id, ok: true };
  }

  #prune(now: number): void {
    for (const [id, exp] of this.#seen) if (exp < now) this.#seen.delete(id);
    while (this.#seen.size >= MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value as string);
  }

  async #persist(): Promise<void> {
    const file = this.#o.seenFile;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(Object.fromEntries(this.#seen)));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
    } catch (e) {
      // The command is applied already; only replay memory is at risk.
      await unlink(tmp).catch(() => undefined);
      this.#o.log.error('telemetry_commands_seen_write_failed', { file, code: (e as NodeJS.ErrnoException).code });
    }
  }
}
