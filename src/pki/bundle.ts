/**
 * What `certs issue` hands to a person: OUTDIR/ca.pem, NAME.pem, NAME-key.pem
 * (unencrypted, 0600: Dask's Security object cannot take a passphrase), a
 * distributed.yaml fragment for that identity (clients: also the gateway's
 * dashboard link), a README with the equivalent Security(...) and
 * `dask worker --tls-*` lines, and optionally NAME.p12.
 * Paths written into the configuration are absolute, resolved at issue time.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import YAML from 'yaml';
import { pkiError } from './errors.js';
import type { IssuedCertificate } from './issue.js';
import { buildPkcs12 } from './p12.js';
import { writeFileAtomic } from './state-dir.js';
import { errnoText } from './keystore.js';
import { awsConfigSnippet, AWS_PROFILE, DEFAULT_CREDENTIALS_PORT } from './aws-config.js';
import { TLS_RELOAD_FILE, TLS_RELOAD_PRELOAD } from './dask-preload.js';
import { splitPemCertificates } from './certificate.js';
import { linkTemplate } from './dashboard-link.js';
import { DASHBOARD_DEFAULT_PORT } from './validity.js';

export const GATEWAY_PORT = 8786;

export interface BundleOptions {
  /** Port of the credentials endpoint written into the worker's AWS config (default 8789). */
  readonly credentialsPort?: number;
  /** Client and admin bundles: distributed.dashboard.link (default https://{host}:8787/status). */
  readonly dashboardLink?: string;
}

export interface BundleFiles {
  caPath: string;
  certPath: string;
  keyPath: string;
  yamlPath: string;
  readmePath: string;
  p12Path?: string;
  /** Workers only: AWS shared config whose credential_process fetches from the gateway. */
  awsConfigPath?: string;
  /** Schedulers and workers: the Dask preload that follows renewed files and rotated CAs (dask-preload.ts). */
  preloadPath?: string;
}

/**
 * Checks, without creating anything, that OUTDIR is (or can be created as) a
 * writable directory: call it before issuing so a bad --out changes nothing.
 */
export function checkOutDir(outDir: string): string {
  const dir = resolve(outDir);
  let probe = dir;
  while (!existsSync(probe)) {
    const up = dirname(probe);
    if (up === probe) break;
    probe = up;
  }
  try {
    if (!statSync(probe).isDirectory()) throw pkiError('outputDir', { dir, reason: `${probe} is not a directory` });
    accessSync(probe, constants.W_OK);
  } catch (e) {
    if ((e as { code?: string }).code === 'GW_PKI_OUTPUT_DIR') throw e;
    throw pkiError('outputDir', { dir, reason: errnoText(e) });
  }
  return dir;
}

export function bundlePaths(outDir: string, name: string, withP12: boolean, role?: string): BundleFiles {
  const dir = resolve(outDir);
  return {
    caPath: join(dir, 'ca.pem'),
    certPath: join(dir, `${name}.pem`),
    keyPath: join(dir, `${name}-key.pem`),
    yamlPath: join(dir, `${name}-distributed.yaml`),
    readmePath: join(dir, `${name}-README.md`),
    ...(withP12 ? { p12Path: join(dir, `${name}.p12`) } : {}),
    ...(role === 'worker' ? { awsConfigPath: join(dir, `${name}-aws-config`) } : {}),
    ...(role === 'worker' || role === 'scheduler' ? { preloadPath: join(dir, TLS_RELOAD_FILE) } : {}),
  };
}

export function writeBundle(outDir: string, issued: IssuedCertificate, p12Password?: string, opts: BundleOptions = {}): BundleFiles {
  const files = bundlePaths(outDir, issued.name, p12Password !== undefined, issued.role);
  mkdirSync(resolve(outDir), { recursive: true, mode: 0o700 });
  writeFileAtomic(files.caPath, issued.caPem, 0o644);
  writeFileAtomic(files.certPath, issued.certPem, 0o644);
  writeFileAtomic(files.keyPath, issued.keyPem, 0o600);
  writeFileAtomic(files.yamlPath, daskYaml(issued, files, opts), 0o644);
  if (files.awsConfigPath !== undefined) writeFileAtomic(files.awsConfigPath, awsConfig(issued, files, opts), 0o644);
  if (files.preloadPath !== undefined) writeFileAtomic(files.preloadPath, TLS_RELOAD_PRELOAD, 0o644);
  writeFileAtomic(files.readmePath, readme(issued, files, opts), 0o644);
  if (files.p12Path !== undefined && p12Password !== undefined) {
    const certPems = [issued.certPem, ...splitPemCertificates(issued.caPem)];
    const p12 = buildPkcs12({ certPems, keyPem: issued.keyPem, password: p12Password, friendlyName: issued.uri });
    writeFileAtomic(files.p12Path, p12, 0o600);
  }
  return files;
}

/** What `certs issue` was told for a bundle beyond the certificate (--gateway-host, --credentials-port, --dashboard-*, --p12). */
export interface BundleSettings {
  readonly gatewayHost?: string;
  readonly options: BundleOptions;
  /** The bundle holds NAME.p12: a renewal writes a new one (the old one holds the old certificate and key). */
  readonly p12: boolean;
}

/**
 * The settings an earlier bundle of identity `name` was written with, read
 * back from its files so that a renewal rewrites the bundle as it was issued;
 * whatever is missing or unreadable falls back to the defaults.
 */
export function bundleSettings(outDir: string, name: string, role: string): BundleSettings {
  const files = bundlePaths(outDir, name, true, role);
  const yaml = readOptional(files.yamlPath, (text) => YAML.parse(text) as { 'scheduler-address'?: unknown; distributed?: { dashboard?: { link?: unknown } } });
  const url = files.awsConfigPath === undefined ? undefined
    : readOptional(files.awsConfigPath, (text) => /https:\/\/(\[[^\]]+\]|[^\s:/]+):(\d+)\/v1\/credentials\/aws/.exec(text));
  const address = typeof yaml?.['scheduler-address'] === 'string' ? /^tls:\/\/(\[[^\]]+\]|[^:]+):\d+$/.exec(yaml['scheduler-address']) : undefined;
  const host = (address?.[1] ?? url?.[1])?.replace(/^\[(.*)\]$/, '$1');
  const link = yaml?.distributed?.dashboard?.link;
  return {
    ...(host !== undefined && host !== 'GATEWAY_HOST' ? { gatewayHost: host } : {}),
    options: {
      ...(url ? { credentialsPort: Number(url[2]) } : {}),
      ...(typeof link === 'string' ? { dashboardLink: link } : {}),
    },
    p12: existsSync(files.p12Path!),
  };
}

function readOptional<T>(file: string, parse: (text: string) => T): T | undefined {
  try {
    return parse(readFileSync(file, 'utf8')) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Which distributed.comm.tls section, and which Security(...) keywords, a role uses. */
function tlsSection(role: string): 'client' | 'worker' | 'scheduler' {
  return role === 'worker' ? 'worker' : role === 'scheduler' ? 'scheduler' : 'client';
}

export function gatewayAddress(host: string | undefined): string {
  const h = host ?? 'GATEWAY_HOST';
  return `tls://${h.includes(':') ? `[${h}]` : h}:${GATEWAY_PORT}`;
}

export function daskYaml(issued: IssuedCertificate, files: BundleFiles, opts: BundleOptions = {}): string {
  const section = tlsSection(issued.role);
  const distributed: Record<string, unknown> = {
    comm: {
      'require-encryption': true,
      tls: {
        'ca-file': files.caPath,
        [section]: { cert: files.certPath, key: files.keyPath },
      },
    },
  };
  const config: Record<string, unknown> = { distributed };
  // Client() with no address reads scheduler-address; workers take it on the command line.
  if (section === 'client') {
    config['scheduler-address'] = gatewayAddress(issued.gatewayHost);
    distributed.dashboard = { link: dashboardLink(opts) };
  }
  if (files.preloadPath !== undefined) Object.assign(distributed, preloadConfig(section, files.preloadPath));
  return `# Dask configuration for ${issued.uri} (serial ${issued.serial}, valid until ${issued.notAfter.toISOString()}).\n`
    + `# Put it in ~/.config/dask/ or point DASK_CONFIG at this directory. Generated by scheduler-gateway certs issue.\n`
    + YAML.stringify(config);
}

/** The tls_reload preload for the processes this bundle runs (a worker's nanny too). */
function preloadConfig(section: 'worker' | 'scheduler' | 'client', path: string): Record<string, unknown> {
  return section === 'worker' ? { worker: { preload: [path] }, nanny: { preload: [path] } } : { scheduler: { preload: [path] } };
}

const py = (s: string): string => JSON.stringify(s);
const sh = (s: string): string => (/^[A-Za-z0-9_./:@=+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export function securitySnippet(issued: IssuedCertificate, files: BundleFiles): string {
  const section = tlsSection(issued.role);
  return [
    'from distributed import Client',
    'from distributed.security import Security',
    '',
    'security = Security(',
    `    tls_ca_file=${py(files.caPath)},`,
    `    tls_${section}_cert=${py(files.certPath)},`,
    `    tls_${section}_key=${py(files.keyPath)},`,
    '    require_encryption=True,',
    ')',
    ...(section === 'client' ? [`client = Client(${py(gatewayAddress(issued.gatewayHost))}, security=security)`] : []),
  ].join('\n');
}

export function commandLine(issued: IssuedCertificate, files: BundleFiles): string {
  const tls = `--tls-ca-file ${sh(files.caPath)} --tls-cert ${sh(files.certPath)} --tls-key ${sh(files.keyPath)}`;
  const preload = (flag: string) => (files.preloadPath !== undefined ? ` ${flag} ${sh(files.preloadPath)}` : '');
  switch (tlsSection(issued.role)) {
    case 'worker':
      return `dask worker ${gatewayAddress(issued.gatewayHost)} ${tls}${preload('--preload')}${preload('--preload-nanny')}`;
    case 'scheduler':
      return `dask scheduler --protocol tls ${tls}${preload('--preload')}`;
    case 'client':
      return `DASK_CONFIG=${sh(files.yamlPath.replace(/\/[^/]+$/, ''))} python your_script.py   # or use the Security(...) above`;
  }
}

export function awsConfig(issued: IssuedCertificate, files: BundleFiles, opts: BundleOptions = {}): string {
  return awsConfigSnippet({
    certPath: files.certPath, keyPath: files.keyPath, caPath: files.caPath,
    host: issued.gatewayHost ?? 'GATEWAY_HOST', port: opts.credentialsPort ?? DEFAULT_CREDENTIALS_PORT,
  });
}

function awsSection(files: BundleFiles): string {
  if (files.awsConfigPath === undefined) return '';
  return `
## Cloud credentials (AWS)

The gateway hands this worker short-lived credentials over mutual TLS (docs/credentials.md).
Point the AWS SDKs at the generated profile:

\`\`\`sh
export AWS_CONFIG_FILE=${sh(files.awsConfigPath)} AWS_PROFILE=${AWS_PROFILE}
\`\`\`
`;
}

function dashboardLink(opts: BundleOptions): string {
  return opts.dashboardLink ?? linkTemplate(DASHBOARD_DEFAULT_PORT);
}

/** Points an existing bundle's configuration at another dashboard link, keeping its comments; false if it already was. */
export function setDashboardLink(yamlPath: string, link: string): boolean {
  const doc = YAML.parseDocument(readFileSync(yamlPath, 'utf8'));
  if (doc.getIn(['distributed', 'dashboard', 'link']) === link) return false;
  doc.setIn(['distributed', 'dashboard', 'link'], link);
  writeFileAtomic(yamlPath, doc.toString(), 0o644);
  return true;
}

function dashboardSection(issued: IssuedCertificate, opts: BundleOptions): string {
  if (tlsSection(issued.role) !== 'client') return '';
  const link = dashboardLink(opts).replaceAll('{host}', issued.gatewayHost ?? 'GATEWAY_HOST');
  return `
## Dashboard

\`client.dashboard_link\` shows ${link} (set by ${issued.name}-distributed.yaml).
Open it with the login link of an access token from your gateway's administrator
(\`scheduler-gateway tokens create\`).
`;
}

function readme(issued: IssuedCertificate, files: BundleFiles, opts: BundleOptions): string {
  return `# ${issued.uri}

Serial ${issued.serial}, valid from ${issued.notBefore.toISOString()} to ${issued.notAfter.toISOString()}.

| file | what |
|---|---|
| ca.pem | the cluster CA (both CAs during a rotation): trust it, nothing else |
| ${issued.name}.pem | this identity's certificate |
| ${issued.name}-key.pem | its private key, unencrypted (mode 0600): keep it on this machine |
| ${issued.name}-distributed.yaml | Dask configuration for this identity |
${files.p12Path !== undefined ? `| ${issued.name}.p12 | certificate, key and CA for a browser (password printed once by the certs issue or renew that wrote it) |\n` : ''}${files.awsConfigPath !== undefined ? `| ${issued.name}-aws-config | AWS config: credential_process fetching short-lived credentials from the gateway |\n` : ''}${files.preloadPath !== undefined ? `| ${TLS_RELOAD_FILE} | Dask preload: the running process follows a renewed certificate and a rotated CA (see the gateway's docs/runbook.md) |\n` : ''}
## Python

\`\`\`python
${securitySnippet(issued, files)}
\`\`\`

## Command line

\`\`\`sh
${commandLine(issued, files)}
\`\`\`
${awsSection(files)}${dashboardSection(issued, opts)}`;
}
