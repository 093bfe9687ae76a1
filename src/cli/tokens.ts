/**
 * `scheduler-gateway tokens create|list|revoke`: dashboard access tokens in
 * <dir>/tokens.db. The token is printed exactly once, by `create`; only its
 * hash is stored, so it can never be shown again.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CliIo } from './io.js';
import { parseArgs, type FlagDecl } from './args.js';
import { recordChange } from './record-change.js';
import { GatewayError } from '../errors/base.js';
import { SCOPES, TOKENS_FILE, TokenStore, type Scope, type TokenRecord } from '../tokens/store.js';
import { tokenError } from '../tokens/errors.js';
import { resolveKey } from '../config/load.js';
import { commonKeys } from '../config/keys/common.js';

const FLAGS: FlagDecl[] = [
  { flag: 'dir' },
  { flag: 'name' },
  { flag: 'scope' },
  { flag: 'expires-days' },
  { flag: 'json', boolean: true },
  { flag: 'all', boolean: true },
  { flag: 'help', boolean: true },
];

const USAGE = `usage:
  scheduler-gateway tokens create --name NAME [--scope view|admin] [--expires-days N] [--dir DIR] [--json]
  scheduler-gateway tokens list [--json] [--all] [--dir DIR]
  scheduler-gateway tokens revoke ID|NAME [--dir DIR]

  --dir DIR           state directory holding tokens.db (default: ./${commonKeys.dir.default}) [env ${commonKeys.dir.env}]
  --name NAME         who or what the token is for; unique among active tokens
  --scope SCOPE       view (GET/HEAD and WebSockets) or admin (also state-changing requests) (default: view)
  --expires-days N    the token stops working after N days (default: never)
  --json              machine-readable output
  --all               list revoked tokens too
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, FLAGS);
  const [sub, ...rest] = positionals;
  if (flags.help || sub === undefined) {
    io.stdout.write(USAGE);
    return sub === undefined && !flags.help ? 2 : 0;
  }
  const dir = resolveKey(commonKeys.dir, { flags, env: io.env, cwd: io.cwd });
  switch (sub) {
    case 'create':
      return create(dir, flags, io);
    case 'list':
      return list(dir, flags, io);
    case 'revoke':
      if (rest.length !== 1) throw usage('tokens revoke takes exactly one ID or NAME');
      return revoke(dir, rest[0]!, io);
    default:
      throw usage(`unknown tokens subcommand '${sub}' (create, list, revoke)`);
  }
}

function create(dir: string, flags: Record<string, unknown>, io: CliIo): number {
  if (typeof flags.name !== 'string') throw usage('tokens create needs --name NAME');
  const scope = (flags.scope ?? 'view') as string;
  if (!(SCOPES as readonly string[]).includes(scope)) throw tokenError('badScope', { value: JSON.stringify(scope) });
  let expiresDays: number | undefined;
  if (flags['expires-days'] !== undefined) {
    const raw = String(flags['expires-days']);
    expiresDays = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(expiresDays)) throw tokenError('badExpiry', { value: JSON.stringify(raw) });
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const store = TokenStore.open(dir);
  try {
    const { token, record } = store.create({ name: flags.name, scope: scope as Scope, expiresDays });
    // Shown before it is recorded: a token created but never shown would be an active secret nobody has.
    if (flags.json) io.stdout.write(JSON.stringify({ ...recordJson(record), token }) + '\n');
    else io.stdout.write(
      `Created token ${record.id} '${record.name}' (scope ${record.scope}, ${record.expiresAt ? `expires ${record.expiresAt.toISOString()}` : 'no expiry'}).\n` +
        `This is the only time the token is shown; store it now:\n\n  ${token}\n\n` +
        `Browser login link (replace GATEWAY-HOST with the gateway's address):\n  https://GATEWAY-HOST:8787/status?token=${token}\n` +
        `Scripts: send the header "Authorization: Bearer <token>".\n` +
        `Take access away again with: scheduler-gateway tokens revoke ${record.id} --dir ${dir}\n`,
    );
    recordChange(dir, 'token_created', { token_id: record.id, name: record.name, scope: record.scope, expires: record.expiresAt?.toISOString() ?? null }, io);
    return 0;
  } finally {
    store.close();
  }
}

function list(dir: string, flags: Record<string, unknown>, io: CliIo): number {
  if (!existsSync(join(dir, TOKENS_FILE))) {
    io.stdout.write(flags.json ? '[]\n' : `no tokens (no ${TOKENS_FILE} in ${dir} yet)\n`);
    return 0;
  }
  const store = TokenStore.open(dir, { readonly: true });
  let rows: TokenRecord[];
  try {
    rows = store.list({ includeRevoked: flags.all === true });
  } finally {
    store.close();
  }
  if (flags.json) {
    io.stdout.write(JSON.stringify(rows.map(recordJson), null, 2) + '\n');
    return 0;
  }
  if (rows.length === 0) {
    io.stdout.write('no tokens\n');
    return 0;
  }
  const table = [['ID', 'NAME', 'SCOPE', 'CREATED', 'EXPIRES', 'LAST USED', ...(flags.all ? ['REVOKED'] : [])]];
  for (const r of rows) {
    table.push([r.id, r.name, r.scope, day(r.createdAt), day(r.expiresAt, 'never'), day(r.lastUsedAt, 'never'), ...(flags.all ? [day(r.revokedAt, '-')] : [])]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  io.stdout.write(table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n');
  return 0;
}

function revoke(dir: string, ref: string, io: CliIo): number {
  const store = TokenStore.open(dir);
  try {
    const r = store.revoke(ref);
    io.stdout.write(`Revoked token ${r.id} '${r.name}'. A running gateway closes its sessions within 2 seconds.\n`);
    recordChange(dir, 'token_revoked', { token_id: r.id, name: r.name }, io);
    return 0;
  } finally {
    store.close();
  }
}

function recordJson(r: TokenRecord): Record<string, unknown> {
  const iso = (d: Date | undefined) => (d ? d.toISOString() : null);
  return { id: r.id, name: r.name, scope: r.scope, created: iso(r.createdAt), expires: iso(r.expiresAt), last_used: iso(r.lastUsedAt), revoked: iso(r.revokedAt) };
}

function day(d: Date | undefined, none = ''): string {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : none;
}

function usage(message: string): GatewayError {
  return new GatewayError('GW_USAGE', `${message}\n${USAGE}`);
}
