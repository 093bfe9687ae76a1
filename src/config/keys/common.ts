/** Keys every part of `run` shares: where the PKI comes from, the cluster, logging. */
import { parse, type KeySpec } from '../spec.js';

const env = (k: string) => `SCHEDULER_GATEWAY_${k.toUpperCase().replace(/[.-]/g, '_')}`;

export const commonKeys: KeySpec[] = [
  { key: 'config', flag: 'config', env: env('config'), placeholder: 'FILE', describe: 'YAML or JSON file with any of these keys', parse: parse.string },
  { key: 'dir', flag: 'dir', env: env('dir'), placeholder: 'DIR', describe: "state directory made by 'certs init' (default: certs/ in the working directory)", parse: parse.string },
  { key: 'passphrase-file', flag: 'passphrase-file', env: env('passphrase_file'), placeholder: 'FILE', describe: `file holding the passphrase of the keys in --dir (or set ${env('passphrase')})`, parse: parse.string },
  { key: 'tls.ca', flag: 'tls-ca', env: env('tls_ca'), placeholder: 'FILE', describe: 'bring-your-own PKI: CA bundle (PEM) that client certificates must chain to', parse: parse.string },
  { key: 'tls.cert', flag: 'tls-cert', env: env('tls_cert'), placeholder: 'FILE', describe: 'bring-your-own PKI: the gateway server certificate (PEM)', parse: parse.string },
  { key: 'tls.key', flag: 'tls-key', env: env('tls_key'), placeholder: 'FILE', describe: 'bring-your-own PKI: its private key (PEM, unencrypted, mode 0600)', parse: parse.string },
  { key: 'tls.crl', flag: 'tls-crl', env: env('tls_crl'), placeholder: 'FILE', describe: 'bring-your-own PKI: CRL (PEM) of revoked client certificates, watched for changes', parse: parse.string },
  { key: 'state-dir', flag: 'state-dir', env: env('state_dir'), placeholder: 'DIR', describe: 'bring-your-own PKI: a private directory (created 0700) for tokens.db and the telemetry spool, which --dir holds otherwise', parse: parse.string },
  { key: 'tls.allow-missing-eku', flag: 'allow-missing-eku', env: env('allow_missing_eku'), placeholder: 'BOOL', boolean: true, describe: 'accept peer certificates that carry no extended key usage at all (bring-your-own PKIs that omit EKUs); one that lists EKUs must still list clientAuth', default: false, parse: parse.bool },
  { key: 'cluster', flag: 'cluster', env: env('cluster'), placeholder: 'ID', describe: 'cluster id in peer SPIFFE URIs (required with --tls-*; read from --dir otherwise)', parse: parse.string },
  { key: 'log-level', flag: 'log-level', env: env('log_level'), placeholder: 'LEVEL', describe: 'debug, info, warn or error (audit lines are always written)', default: 'info', parse: parse.oneOf(['debug', 'info', 'warn', 'error'] as const) },
];
