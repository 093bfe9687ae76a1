/**
 * Short-lived cloud credentials for workers (docs/credentials.md).
 *
 * Owns: the in-memory holder, the self-hosted sources (file, command), the
 * `push-credentials` control-plane command handler, and the mTLS listener
 * workers fetch from. Must not import other components (terminator,
 * dashboard, telemetry runtime); it reads trust and sessions from the
 * context and hands its command table to whoever starts telemetry.
 *
 * Nothing here writes a credential to disk or to a log: values live in the
 * holder and in the response body, nowhere else.
 */
import type { AddressInfo } from 'node:net';
import type { Component, GatewayContext } from '../runtime/context.js';
import type { Endpoint } from '../config/spec.js';
import type { CredentialsConfig } from '../config/keys/credentials.js';
import type { CommandHandler } from '../telemetry/commands.js';
import { credentialsError } from './errors.js';
import { CredentialHolder } from './holder.js';
import { startFileSource, type Source } from './file-source.js';
import { startCommandSource } from './command-source.js';
import { startCredentialsServer } from './server.js';
import { PUSH_COMMAND, pushCredentialsCommand } from './push-command.js';
import { DEFAULT_CREDENTIALS_PORT } from '../pki/aws-config.js';

export interface CredentialsSettings {
  readonly listen: Endpoint | undefined;
  readonly file: string | undefined;
  readonly command: string | undefined;
  readonly refreshBeforeMs: number;
  readonly commandTimeoutMs: number;
  /** A control plane is configured: credentials may be pushed. */
  readonly pushes: boolean;
  /** As the descriptor budget left it. */
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
}

export function credentialsSettings(c: CredentialsConfig, controlPlane: URL | undefined): CredentialsSettings {
  const { file, command } = c;
  if (file !== undefined && command !== undefined) throw credentialsError('config', { reason: '--credentials-file excludes --credentials-command: configure one self-hosted source' });
  const pushes = controlPlane !== undefined;
  const enabled = c.listen !== undefined || file !== undefined || command !== undefined || pushes;
  return {
    listen: c.listen ?? (enabled ? { host: '0.0.0.0', port: DEFAULT_CREDENTIALS_PORT } : undefined),
    file,
    command,
    refreshBeforeMs: c.refreshBefore,
    commandTimeoutMs: c.commandTimeout,
    pushes,
    maxConnections: c.maxConnections,
    maxConnectionsPerAddress: c.maxConnectionsPerAddress,
  };
}

export interface CredentialsComponent extends Component {
  /** Bound address of the listener; undefined when nothing is configured. */
  readonly address: AddressInfo | undefined;
  /** Handlers to add to the control-plane command table (startTelemetry deps.commands). */
  readonly commands: ReadonlyMap<string, CommandHandler>;
  readonly holder: CredentialHolder;
}

export interface CredentialsDeps {
  /** Poll interval of the watched credentials file (tests shorten it). */
  readonly filePollMs?: number;
}

export async function startCredentials(ctx: GatewayContext, s: CredentialsSettings, deps: CredentialsDeps = {}): Promise<CredentialsComponent> {
  const log = ctx.log.child({ component: 'credentials' });
  const holder = new CredentialHolder({ log, metrics: ctx.metrics, now: ctx.now });
  const commands = new Map<string, CommandHandler>([[PUSH_COMMAND, pushCredentialsCommand(holder, ctx.now)]]);
  if (!s.listen) {
    log.info('credentials_disabled', { why: 'no --credentials-file, --credentials-command, --control-plane or --credentials-listen' });
    return { name: 'credentials', address: undefined, commands, holder, drain: async () => undefined, close: async () => holder.clear() };
  }
  const sourceDeps = { holder, log, metrics: ctx.metrics, now: ctx.now };
  const sources: Source[] = [];
  if (s.file) sources.push(startFileSource(sourceDeps, { file: s.file, ...(deps.filePollMs !== undefined ? { pollMs: deps.filePollMs } : {}) }));
  if (s.command) sources.push(startCommandSource(sourceDeps, { command: s.command, timeoutMs: s.commandTimeoutMs, refreshBeforeMs: s.refreshBeforeMs }));
  const names = [...(s.file ? ['file'] : []), ...(s.command ? ['command'] : []), ...(s.pushes ? ['control plane'] : [])];
  let server;
  try {
    server = await startCredentialsServer(ctx, { listen: s.listen, holder, sources: names, maxConnections: s.maxConnections, maxPerAddress: s.maxConnectionsPerAddress });
  } catch (e) {
    for (const src of sources) src.close();
    throw e;
  }
  const stopSources = () => { for (const src of sources) src.close(); };
  return {
    name: 'credentials',
    address: server.address,
    commands,
    holder,
    async drain(deadlineMs) {
      stopSources();
      await server.drain(deadlineMs);
    },
    async close() {
      stopSources();
      await server.close();
      holder.clear();
    },
  };
}
