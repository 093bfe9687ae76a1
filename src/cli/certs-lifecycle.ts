/**
 * `certs renew`, `certs rotate-ca begin|switch|finish`, `certs passphrase`,
 * `certs crl` and `certs list`: keeping a cluster's certificates alive past their first
 * year (docs/runbook.md). Parsing and printing only; the work is in src/pki/.
 * Each change appends one line to <dir>/audit.log.
 */
import { resolve } from 'node:path';
import type { CliIo } from './io.js';
import { recordChange } from './record-change.js';
import { common, DIR_HELP, JSON_HELP, P12_FILE_HELP, PASS_HELP, p12Password, p12PasswordText, passphrase, report, required, str, type Sub } from './certs-args.js';
import { listCertificates } from './certs-list.js';
import type { Flags } from '../config/load.js';
import { pkiError } from '../pki/errors.js';
import { bundleSettings, checkOutDir, writeBundle, type BundleFiles } from '../pki/bundle.js';
import { refreshBundleTrust, type BundleTrustResult } from '../pki/bundle-trust.js';
import { renewable, renewCertificate } from '../pki/renew.js';
import { beginRotation, finishRotation, switchRotation, type StepResult } from '../pki/rotation.js';
import { changePassphrase } from '../pki/passphrase-change.js';
import { NEW_PASSPHRASE_ENV, NEW_PASSPHRASE_FILE_ENV, resolveNewPassphrase } from '../pki/passphrase.js';
import { requireInitialized } from '../pki/records.js';
import { crlFreshness, CRL_VALIDITY_DAYS, refreshCrl } from '../pki/revocation.js';
import { isValidName } from '../pki/identity.js';
import { DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, parseDays } from '../pki/validity.js';
import { crashPoint } from '../pki/crash-points.js';

const DAYS = { flag: 'days' };
const JSON_FLAG = { flag: 'json', boolean: true };
const PASS = { flag: 'passphrase-file' };

export const LIFECYCLE_SUBS: Record<string, Sub> = {
  renew: {
    flags: [...common, JSON_FLAG, PASS, { flag: 'name' }, DAYS, { flag: 'out' }, { flag: 'revoke-previous', boolean: true }, { flag: 'p12-password-file' }],
    usage: `usage: scheduler-gateway certs renew --name NAME [--days N] [--out DIR] [--revoke-previous] [--p12-password-file FILE] [--json] [--dir DIR]

A new key and certificate (new serial) for the identity NAME stands for: same role, name and cluster.
Leaves are issued by the current issuing CA and their bundle is written as certs issue writes it,
with the gateway host, credentials port and dashboard link the previous bundle was issued with,
and a new NAME.p12 when the previous bundle had one (under a new password, printed once);
--name gateway replaces the gateway's own certificate, which a running gateway serves within a
second without dropping a connection. The previous certificate stays valid until it expires.

  --name NAME               the certificate to renew (gateway for the gateway's own)
  --days N                  validity in days (default ${DEFAULT_LEAF_DAYS}, at most the CA's remaining life)
  --out DIR                 where to write the new bundle (default: where the previous one was written)
  --revoke-previous         revoke the previous certificate (reason superseded); its sessions are closed
${P12_FILE_HELP}
${JSON_HELP}
${DIR_HELP}
${PASS_HELP}
`,
    run: runRenew,
  },
  'rotate-ca begin': {
    flags: [...common, JSON_FLAG, PASS, DAYS],
    usage: `usage: scheduler-gateway certs rotate-ca begin [--days N] [--json] [--dir DIR]

Creates the next CA and trusts it beside the current one. From now on it issues every
certificate, and every bundle issued or renewed carries both CAs. The CA file of every bundle
this host wrote is updated (a Dask process running the tls_reload.py preload follows it).
The gateway keeps serving its current certificate until certs rotate-ca switch.

  --days N                  validity of the new CA in days (default ${DEFAULT_CA_DAYS})
${JSON_HELP}
${DIR_HELP}
${PASS_HELP}
`,
    run: (flags, dir, io) => runStep('begin', flags, dir, io),
  },
  'rotate-ca switch': {
    flags: [...common, JSON_FLAG, PASS, DAYS],
    usage: `usage: scheduler-gateway certs rotate-ca switch [--days N] [--json] [--dir DIR]

Gives the gateway a certificate from the new CA (a running gateway serves it within a second,
without dropping a connection); the CRL is signed by the new CA from now on. Run it once every
peer that may connect holds a bundle issued after certs rotate-ca begin.

  --days N                  validity of the new gateway certificate (default ${DEFAULT_LEAF_DAYS})
${JSON_HELP}
${DIR_HELP}
${PASS_HELP}
`,
    run: (flags, dir, io) => runStep('switch', flags, dir, io),
  },
  'rotate-ca finish': {
    flags: [...common, JSON_FLAG, PASS, { flag: 'force', boolean: true }],
    usage: `usage: scheduler-gateway certs rotate-ca finish [--force] [--json] [--dir DIR]

Removes the old CA from the trust store and deletes its key. Certificates it issued are refused
from now on, and a running gateway closes the live sessions that used one. Refused while
certificates of the old CA are still current (certs list marks them).

  --force                   finish anyway, cutting those certificates off
${JSON_HELP}
${DIR_HELP}
${PASS_HELP}
`,
    run: (flags, dir, io) => runStep('finish', flags, dir, io),
  },
  passphrase: {
    flags: [...common, JSON_FLAG, PASS, { flag: 'new-passphrase-file' }],
    usage: `usage: scheduler-gateway certs passphrase --new-passphrase-file FILE [--json] [--dir DIR]

Re-encrypts every key in the state directory under a new passphrase (at least 12 characters),
all at one instant: interrupted, it leaves every key under the old passphrase or every key under
the new one. A running gateway reads its passphrase file again when it next needs it; one
started with $SCHEDULER_GATEWAY_PASSPHRASE needs a restart to load new key material.

  --new-passphrase-file FILE  the new passphrase (mode 0600); default: $${NEW_PASSPHRASE_FILE_ENV}, then $${NEW_PASSPHRASE_ENV}
${JSON_HELP}
${DIR_HELP}
${PASS_HELP}
`,
    run: runPassphrase,
  },
  crl: {
    flags: [...common, JSON_FLAG, PASS],
    usage: `usage: scheduler-gateway certs crl [--json] [--dir DIR]

Signs crl.pem again now, with the next CRL number and the same revocations: a CRL claims to be
current for ${CRL_VALIDITY_DAYS} days, and only issue, revoke, renew --revoke-previous and rotate-ca switch
sign one otherwise. Run it daily from cron or a systemd timer; certs list says when it is due.

${JSON_HELP}
${DIR_HELP}
${PASS_HELP}
`,
    run: runCrl,
  },
  list: {
    flags: [...common, JSON_FLAG, { flag: 'warn-days' }],
    usage: `usage: scheduler-gateway certs list [--warn-days N] [--json] [--dir DIR]

Shows the CAs (which issues, which serves the gateway, which leaves at rotate-ca finish) and
every certificate issued in this cluster: serial, role, name, the CA that issued it, not-after,
status (valid, expired, revoked, untrusted) and what to do about it: expiring within the
window, renewed, or to renew before rotate-ca finish. Never shows key material.

  --warn-days N             mark certificates that expire within N days (default 30)
${JSON_HELP}
${DIR_HELP}
`,
    run: listCertificates,
  },
};

async function runRenew(flags: Flags, dir: string, io: CliIo): Promise<number> {
  const name = required(flags, 'name', 'renew');
  if (!isValidName(name)) throw pkiError('invalidName', { name });
  const days = str(flags, 'days') === undefined ? undefined : parseDays(str(flags, 'days'), DEFAULT_LEAF_DAYS);
  requireInitialized(dir);
  const pass = passphrase(flags, io, dir);
  const current = renewable(dir, name);
  const out = str(flags, 'out');
  if (current.role === 'gateway' && out !== undefined) throw pkiError('usage', { message: '--out does not apply to the gateway: its certificate lives in the state directory' });
  const bundleDir = current.role === 'gateway' ? undefined : out ?? current.bundle;
  if (current.role !== 'gateway' && bundleDir === undefined) {
    throw pkiError('usage', { message: `certs renew needs --out: '${name}' was issued before bundle directories were recorded` });
  }
  const outDir = bundleDir === undefined ? undefined : checkOutDir(resolve(io.cwd, bundleDir));
  const settings = current.bundle === undefined ? { options: {}, p12: false } : bundleSettings(current.bundle, name, current.role);
  if (current.role === 'gateway' && str(flags, 'p12-password-file') !== undefined) throw pkiError('usage', { message: '--p12-password-file does not apply to the gateway: it has no bundle' });
  const p12 = p12Password(flags, io, settings.p12);
  const r = await renewCertificate({ dir, passphrase: pass, name, ...(days !== undefined ? { days } : {}), revokePrevious: flags['revoke-previous'] === true, ...(outDir ? { bundle: outDir } : {}) });
  const issued = settings.gatewayHost !== undefined ? { ...r.issued, gatewayHost: settings.gatewayHost } : r.issued;
  const files = outDir ? writeBundle(outDir, issued, p12?.password, settings.options) : undefined;
  const revoked = r.crlNumber !== undefined;
  report(flags, io, {
    renewed: { serial: r.entry.serial, role: r.entry.role, name, uri: r.entry.uri, notAfter: r.entry.notAfter, caSerial: r.entry.caSerial },
    previous: { serial: r.previous.serial, notAfter: r.previous.notAfter, revoked, ...(revoked ? { crlNumber: r.crlNumber } : {}) },
    ...(files ? { bundle: files } : {}),
    ...(p12?.generated ? { p12Password: p12.password } : {}),
    rewrittenKeys: r.rewrittenKeys,
  }, `Renewed ${r.entry.uri}: serial ${r.entry.serial} (was ${r.previous.serial}), valid until ${r.entry.notAfter}, issued by CA ${r.entry.caSerial}.\n`
    + (files ? bundleText(files) + p12PasswordText(p12) : `  ${dir}/gateway.pem and gateway-key.pem replaced; a running gateway serves the new certificate within a second.\n`)
    + (revoked ? `  The previous certificate is revoked (superseded, CRL number ${r.crlNumber}).\n`
      : `  The previous certificate stays valid until ${r.previous.notAfter} (certs revoke --serial ${r.previous.serial} ends it sooner).\n`)
    + r.rewrittenKeys.map((k) => `  ${k} rewritten with the current key derivation.\n`).join(''));
  recordChange(dir, 'certificate_renewed', {
    serial: r.entry.serial, previous_serial: r.previous.serial, role: r.entry.role, name, uri: r.entry.uri, not_after: r.entry.notAfter,
    ca_serial: r.entry.caSerial, revoked_previous: revoked, ...(outDir ? { bundle: outDir, p12: files?.p12Path !== undefined } : {}), rewritten_keys: r.rewrittenKeys,
  }, io);
  return 0;
}

function bundleText(f: BundleFiles): string {
  return [f.caPath, f.certPath, `${f.keyPath} (unencrypted, mode 0600)`, f.yamlPath, f.readmePath, f.awsConfigPath, f.preloadPath, f.p12Path]
    .filter((p) => p !== undefined).map((p) => `  ${p}\n`).join('');
}

const STEP_EVENTS = { begin: 'ca_rotation_begun', switch: 'ca_rotation_switched', finish: 'ca_rotation_finished' } as const;

async function runStep(step: 'begin' | 'switch' | 'finish', flags: Flags, dir: string, io: CliIo): Promise<number> {
  requireInitialized(dir);
  const pass = passphrase(flags, io, dir);
  const days = str(flags, 'days') === undefined ? undefined : parseDays(str(flags, 'days'), DEFAULT_CA_DAYS);
  const o = { dir, passphrase: pass, ...(days !== undefined ? { days } : {}) };
  const r: StepResult & { cutOff?: Array<{ role: string; name: string; serial: string }> } = step === 'begin' ? await beginRotation(o)
    : step === 'switch' ? await switchRotation(o) : await finishRotation({ ...o, force: flags.force === true });
  crashPoint(`rotate-ca:${step}:committed`);
  // The gateway's certificate lives in the state directory; bundles are the peers' trust.
  const bundles = step === 'switch' ? undefined : refreshBundleTrust(dir, r.trustPem);
  const cutOff = (r.cutOff ?? []).map((e) => ({ role: e.role, name: e.name, serial: e.serial }));
  report(flags, io, { step, alreadyDone: r.alreadyDone, previousCa: r.previousCa, nextCa: r.nextCa, ...(bundles ? { bundles } : {}), ...(step === 'finish' ? { cutOff } : {}) },
    stepText(step, r, dir) + (bundles ? bundlesText(bundles) : '') + cutOff.map((e) => `  cut off: ${e.role}/${e.name} serial ${e.serial}\n`).join(''));
  recordChange(dir, STEP_EVENTS[step], {
    previous_ca: r.previousCa.serial, next_ca: r.nextCa.serial, next_ca_not_after: r.nextCa.notAfter, already_done: r.alreadyDone,
    ...(bundles ? { bundles_updated: bundles.updated.length, bundles_not_updated: bundles.skipped.length } : {}),
    ...(step === 'finish' ? { forced: flags.force === true, cut_off: cutOff.map((e) => `${e.role}/${e.name}`) } : {}),
  }, io);
  return 0;
}

function stepText(step: 'begin' | 'switch' | 'finish', r: StepResult, dir: string): string {
  const done = r.alreadyDone ? ' (already done: nothing changed)' : '';
  switch (step) {
    case 'begin':
      return `CA rotation begun${done}: CA ${r.nextCa.serial} (valid until ${r.nextCa.notAfter}) issues from now on; CA ${r.previousCa.serial} stays trusted until finish.\n`
        + `Next: certs renew every certificate certs list --dir ${dir} marks, restart each peer with its new bundle, then certs rotate-ca switch.\n`;
    case 'switch':
      return `Switched${done}: the gateway serves a certificate from CA ${r.nextCa.serial}; a running gateway picks it up within a second.\n`
        + `Next: once certs list marks nothing to renew, certs rotate-ca finish.\n`;
    case 'finish':
      return `CA ${r.previousCa.serial} retired: certificates it issued are refused, and a running gateway closes their sessions. CA ${r.nextCa.serial} is the only CA.\n`;
  }
}

function bundlesText(b: BundleTrustResult): string {
  return b.updated.map((d) => `  CA file updated: ${d}/ca.pem\n`).join('')
    + b.skipped.map((s) => `  not updated (${s.name}): ${s.bundle}: ${s.reason}; copy the state directory's ca.pem there\n`).join('');
}

async function runCrl(flags: Flags, dir: string, io: CliIo): Promise<number> {
  requireInitialized(dir);
  const pass = passphrase(flags, io, dir);
  const now = new Date();
  const { crlNumber } = await refreshCrl(dir, pass, { force: true, now });
  const nextUpdate = crlFreshness(dir, now).nextUpdate?.toISOString();
  report(flags, io, { crlNumber, thisUpdate: now.toISOString(), nextUpdate },
    `Signed CRL number ${crlNumber} to ${dir}/crl.pem: current until ${nextUpdate}; a running gateway serves it within a second.\n`);
  recordChange(dir, 'crl_signed', { crl_number: crlNumber, next_update: nextUpdate }, io);
  return 0;
}

async function runPassphrase(flags: Flags, dir: string, io: CliIo): Promise<number> {
  requireInitialized(dir);
  const pass = passphrase(flags, io, dir);
  const newFile = str(flags, 'new-passphrase-file');
  const newPassphrase = resolveNewPassphrase({ env: io.env, cwd: io.cwd, ...(newFile !== undefined ? { passphraseFile: resolve(io.cwd, newFile) } : {}) });
  if (newPassphrase === pass) throw pkiError('usage', { message: 'the new passphrase is the current one' });
  const r = await changePassphrase({ dir, passphrase: pass, newPassphrase });
  report(flags, io, { alreadyDone: r.alreadyDone, rewritten: r.rewritten },
    (r.alreadyDone ? 'The keys are already encrypted with the new passphrase (a change that completed earlier): nothing changed.\n'
      : `Re-encrypted ${r.rewritten.length} keys with the new passphrase:\n${r.rewritten.map((f) => `  ${f}\n`).join('')}`)
    + 'Give the gateway the new passphrase: replace its passphrase file, or restart it with the new SCHEDULER_GATEWAY_PASSPHRASE.\n');
  recordChange(dir, 'passphrase_changed', { keys: r.rewritten, already_done: r.alreadyDone }, io);
  return 0;
}
