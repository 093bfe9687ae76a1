/**
 * `scheduler-gateway certs init|issue|revoke` (and, from certs-lifecycle.ts,
 * renew|rotate-ca|passphrase|crl|list): the managed per-cluster PKI. Argument
 * parsing and printing only; the work is in src/pki/. Every failure is a
 * GatewayError: one line on stderr, exit code 2, nothing changed.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CliIo } from './io.js';
import { parseArgs } from './args.js';
import { recordChange } from './record-change.js';
import { common, DIR_HELP, P12_FILE_HELP, PASS_HELP, p12Password, p12PasswordText, passphrase, required, stateDir, str, type Sub } from './certs-args.js';
import { LIFECYCLE_SUBS } from './certs-lifecycle.js';
import type { Flags } from '../config/load.js';
import { pkiError } from '../pki/errors.js';
import { initCluster } from '../pki/init.js';
import { issueCertificate, parseIssuableRole, ISSUABLE_ROLES } from '../pki/issue.js';
import { revokeCertificate, parseReason } from '../pki/revocation.js';
import { checkOutDir, writeBundle } from '../pki/bundle.js';
import { requireInitialized } from '../pki/records.js';
import { parseDays, parseKeyType, DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, DASHBOARD_DEFAULT_PORT } from '../pki/validity.js';
import { DEFAULT_CREDENTIALS_PORT } from '../pki/aws-config.js';
import { CRL_REASONS } from '../pki/x509.js';
import { isValidName } from '../pki/identity.js';
import { GatewayError } from '../errors/base.js';
import { parse } from '../config/spec.js';
import { badDashboardUrl, linkTemplate } from '../pki/dashboard-link.js';

const SUBS: Record<string, Sub> = {
  init: {
    flags: [...common, { flag: 'cluster' }, { flag: 'host', repeatable: true }, { flag: 'days' }, { flag: 'key-type' }, { flag: 'passphrase-file' }],
    usage: `usage: scheduler-gateway certs init --cluster ID [--host NAME_OR_IP ...] [--days N] [--key-type ec-p256|rsa-3072] [--dir DIR]

Creates the cluster CA (path length 0: it signs leaves only) and the gateway's
server certificate. Private keys are stored encrypted with the passphrase.

  --cluster ID              cluster id: 1-63 characters of a-z, 0-9, '-', '.', '_'
  --host NAME_OR_IP         DNS name or IP clients use to reach the gateway; repeat for several
                            (default: localhost, 127.0.0.1, ::1)
  --days N                  CA validity in days (default ${DEFAULT_CA_DAYS}); the gateway certificate gets at most ${DEFAULT_LEAF_DAYS}
  --key-type TYPE           ec-p256 (default) or rsa-3072
${DIR_HELP}
${PASS_HELP}
`,
    run: runInit,
  },
  issue: {
    flags: [...common, { flag: 'role' }, { flag: 'name' }, { flag: 'out' }, { flag: 'days' }, { flag: 'p12', boolean: true },
      { flag: 'p12-password-file' }, { flag: 'passphrase-file' }, { flag: 'gateway-host' }, { flag: 'credentials-port' },
      { flag: 'dashboard-port' }, { flag: 'dashboard-url' }],
    usage: `usage: scheduler-gateway certs issue --role ${ISSUABLE_ROLES.join('|')} --name NAME --out OUTDIR [--days N] [--p12] [--dir DIR]

Issues a certificate for spiffe://<cluster>/<role>/<name> (scheduler: spiffe://<cluster>/scheduler)
and writes into OUTDIR: ca.pem, NAME.pem, NAME-key.pem (unencrypted, mode 0600),
NAME-distributed.yaml (Dask configuration) and NAME-README.md (Security(...) and dask CLI lines).

  --role ROLE               worker, client, admin or scheduler
  --name NAME               unique among valid certificates; 1-63 of A-Z a-z 0-9 . _ -
  --out OUTDIR              where to write the bundle (created 0700 if missing)
  --days N                  validity in days (default ${DEFAULT_LEAF_DAYS}; at most the CA's remaining life)
  --p12                     also write NAME.p12 for a browser; its password is printed once
${P12_FILE_HELP}
  --gateway-host HOST       gateway address written into the bundle (default: the first --host of certs init;
                            it must be a name or IP in the gateway certificate)
  --credentials-port PORT   worker AWS config: port of the gateway's credentials endpoint (default ${DEFAULT_CREDENTIALS_PORT})
  --dashboard-port PORT     client and admin bundles: the gateway dashboard's port, for client.dashboard_link
                            (https://{host}:PORT/status; default ${DASHBOARD_DEFAULT_PORT})
  --dashboard-url URL       client and admin bundles: the whole link instead (https only; {host}: the gateway)
${DIR_HELP}
${PASS_HELP}
`,
    run: runIssue,
  },
  revoke: {
    flags: [...common, { flag: 'name' }, { flag: 'serial' }, { flag: 'reason' }, { flag: 'passphrase-file' }],
    usage: `usage: scheduler-gateway certs revoke (--name NAME | --serial HEX) [--reason REASON] [--dir DIR]

Records the revocation in revoked.json (the running gateway cuts that identity's
sessions) and writes a CRL signed by the CA to crl.pem.

  --name NAME               the valid certificate with this name
  --serial HEX              the certificate with this serial (as certs list shows it)
  --reason REASON           ${Object.keys(CRL_REASONS).join(', ')} (default unspecified)
${DIR_HELP}
${PASS_HELP}
`,
    run: runRevoke,
  },
  ...LIFECYCLE_SUBS,
};

const USAGE = `usage: scheduler-gateway certs <init|issue|list|revoke|crl|renew|rotate-ca|passphrase> [options]

  init        create the cluster CA and the gateway certificate
  issue       issue a worker, client, admin or scheduler certificate and its Dask bundle
  list        list the CAs and issued certificates, what expires and what to renew
  revoke      revoke a certificate and publish a new CRL
  crl         sign the CRL again now (run it daily: it is current for 30 days)
  renew       a new certificate and key for the same identity (also the gateway's own)
  rotate-ca   replace the CA with an overlap: begin, switch, finish (docs/runbook.md)
  passphrase  re-encrypt every key under a new passphrase

Run 'scheduler-gateway certs <subcommand> --help' for its options.
`;

const USAGE_NAMES = 'init, issue, list, revoke, crl, renew, rotate-ca begin|switch|finish, passphrase';

const ROTATE_USAGE = `usage: scheduler-gateway certs rotate-ca <begin|switch|finish> [options]

  begin     a new CA is trusted beside the current one and issues from now on
  switch    the gateway serves a certificate from the new CA
  finish    the old CA leaves the trust store; what it issued is refused

Run 'scheduler-gateway certs rotate-ca <step> --help' for its options; docs/runbook.md for the whole procedure.
`;

export async function main(argv: string[], io: CliIo): Promise<number> {
  let [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === 'rotate-ca') {
    const [step, ...more] = rest;
    if (step === undefined || step.startsWith('-') || step === 'help') {
      io.stdout.write(ROTATE_USAGE);
      return step === undefined ? 2 : 0;
    }
    [name, rest] = [`rotate-ca ${step}`, more];
  }
  const sub = SUBS[name];
  if (!sub) throw pkiError('usage', { message: `unknown certs subcommand '${name}' (${USAGE_NAMES})` });
  const { flags, positionals } = parseArgs(rest, sub.flags);
  if (flags.help) {
    io.stdout.write(sub.usage);
    return 0;
  }
  if (positionals.length > 0) throw pkiError('usage', { message: `unexpected argument '${positionals[0]}' (see certs ${name} --help)` });
  return sub.run(flags, stateDir(flags, io), io);
}

async function runInit(flags: Flags, dir: string, io: CliIo): Promise<number> {
  const clusterId = required(flags, 'cluster', 'init');
  const hosts = (flags.host as string[] | undefined) ?? [];
  const days = parseDays(str(flags, 'days'), DEFAULT_CA_DAYS);
  const keyType = parseKeyType(str(flags, 'key-type'));
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw pkiError('badDir', { dir, reason: 'not a directory' });
  const pass = passphrase(flags, io);
  const r = await initCluster({ dir, clusterId, passphrase: pass, hosts, days, keyType });
  io.stdout.write(`Initialized cluster ${clusterId} in ${dir} (${keyType}).\n`
    + `  CA certificate:       ${join(dir, 'ca.pem')} (path length 0, valid ${days} days)\n`
    + `  gateway certificate:  ${join(dir, 'gateway.pem')} serial ${r.gatewaySerial}\n`
    + `  private keys are encrypted with the passphrase; keep it safe, it is not stored.\n`
    + `Next: scheduler-gateway certs issue --dir ${dir} --role worker --name NAME --out OUTDIR\n`);
  recordChange(dir, 'cluster_initialized', { cluster: clusterId, gateway_serial: r.gatewaySerial, hosts, key_type: keyType, days }, io);
  return 0;
}

async function runIssue(flags: Flags, dir: string, io: CliIo): Promise<number> {
  const role = parseIssuableRole(required(flags, 'role', 'issue'));
  const name = required(flags, 'name', 'issue');
  if (!isValidName(name)) throw pkiError('invalidName', { name });
  const out = required(flags, 'out', 'issue');
  const days = parseDays(str(flags, 'days'), DEFAULT_LEAF_DAYS);
  requireInitialized(dir);
  const pass = passphrase(flags, io, dir);
  const p12 = p12Password(flags, io, flags.p12 === true);
  const outDir = checkOutDir(resolve(io.cwd, out));
  const gatewayHost = str(flags, 'gateway-host');
  if (gatewayHost !== undefined && !/^(?:[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45})$/.test(gatewayHost)) throw new GatewayError('GW_USAGE', `--gateway-host ${JSON.stringify(gatewayHost)} is not a DNS name or IP address`);
  const credentialsPort = str(flags, 'credentials-port') === undefined ? undefined : parse.int(1, 65535)(str(flags, 'credentials-port'), '--credentials-port');
  const dashboardLink = dashboardLinkFrom(flags);
  const issuedRaw = await issueCertificate({ dir, passphrase: pass, role, name, days, bundle: outDir });
  const issued = gatewayHost !== undefined ? { ...issuedRaw, gatewayHost } : issuedRaw;
  const files = writeBundle(outDir, issued, p12?.password, { ...(credentialsPort !== undefined ? { credentialsPort } : {}), ...(dashboardLink !== undefined ? { dashboardLink } : {}) });
  io.stdout.write(`Issued ${issued.uri} serial ${issued.serial}, valid until ${issued.notAfter.toISOString()}.\n`
    + `  ${files.caPath}\n  ${files.certPath}\n  ${files.keyPath} (unencrypted, mode 0600)\n`
    + `  ${files.yamlPath}\n  ${files.readmePath}\n`
    + (files.awsConfigPath !== undefined ? `  ${files.awsConfigPath} (AWS_CONFIG_FILE for credentials from the gateway)\n` : '')
    + (files.p12Path !== undefined ? `  ${files.p12Path}\n` : '')
    + p12PasswordText(p12));
  recordChange(dir, 'certificate_issued', { serial: issued.serial, role, name, uri: issued.uri, not_after: issued.notAfter.toISOString(), bundle: outDir, p12: files.p12Path !== undefined }, io);
  return 0;
}

/** --dashboard-url as given, or the link for --dashboard-port; neither: undefined (the bundle's default). */
function dashboardLinkFrom(flags: Flags): string | undefined {
  const url = str(flags, 'dashboard-url');
  const port = str(flags, 'dashboard-port');
  if (url !== undefined && port !== undefined) throw new GatewayError('GW_USAGE', '--dashboard-url and --dashboard-port exclude each other (the URL names its port)');
  if (port !== undefined) return linkTemplate(parse.int(1, 65535)(port, '--dashboard-port'));
  const why = url === undefined ? undefined : badDashboardUrl(url);
  if (why !== undefined) throw new GatewayError('GW_USAGE', `--dashboard-url ${JSON.stringify(url)} cannot be a dashboard link: ${why}`);
  return url;
}

async function runRevoke(flags: Flags, dir: string, io: CliIo): Promise<number> {
  const name = str(flags, 'name');
  const serial = str(flags, 'serial');
  if ((name === undefined) === (serial === undefined)) throw pkiError('usage', { message: 'certs revoke needs exactly one of --name or --serial' });
  const reason = parseReason(str(flags, 'reason'));
  requireInitialized(dir);
  const pass = passphrase(flags, io, dir);
  const r = await revokeCertificate({ dir, passphrase: pass, reason, ...(name !== undefined ? { name } : { serial: serial! }) });
  io.stdout.write(`Revoked ${r.role} '${r.name}' serial ${r.serial} (${reason}).\n`
    + `  ${join(dir, 'revoked.json')} updated; CRL number ${r.crlNumber} written to ${join(dir, 'crl.pem')}.\n`);
  recordChange(dir, 'certificate_revoked', { serial: r.serial, role: r.role, name: r.name, reason, crl_number: r.crlNumber }, io);
  return 0;
}
