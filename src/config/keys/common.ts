/** Keys every part of `run` shares: where the PKI comes from, the cluster, logging. */
import { key, parse, type SliceOf } from '../spec.js';

export const commonKeys = {
  config: key({ key: 'config', flag: 'config', placeholder: 'FILE', describe: 'YAML or JSON file with any of these keys (relative paths in it are taken from its directory)', path: 'file', parse: parse.string }),
  dir: key({ key: 'dir', flag: 'dir', placeholder: 'DIR', describe: "state directory made by 'certs init'", default: 'certs', path: 'file', parse: parse.string }),
  passphraseFile: key({ key: 'passphrase-file', flag: 'passphrase-file', placeholder: 'FILE', describe: `file holding the passphrase of the keys in --dir (or set SCHEDULER_GATEWAY_PASSPHRASE)`, path: 'file', parse: parse.string }),
  tlsCa: key({ key: 'tls.ca', flag: 'tls-ca', placeholder: 'FILE', describe: 'bring-your-own PKI: CA bundle (PEM) that client certificates must chain to', path: 'file', parse: parse.string }),
  tlsCert: key({ key: 'tls.cert', flag: 'tls-cert', placeholder: 'FILE', describe: 'bring-your-own PKI: the gateway server certificate (PEM)', path: 'file', parse: parse.string }),
  tlsKey: key({ key: 'tls.key', flag: 'tls-key', placeholder: 'FILE', describe: 'bring-your-own PKI: its private key (PEM, unencrypted, mode 0600)', path: 'file', parse: parse.string }),
  tlsCrl: key({ key: 'tls.crl', flag: 'tls-crl', placeholder: 'FILE', describe: 'bring-your-own PKI: CRL (PEM) of revoked client certificates, watched for changes', path: 'file', parse: parse.string }),
  stateDir: key({ key: 'state-dir', flag: 'state-dir', placeholder: 'DIR', describe: 'bring-your-own PKI: a private directory (created 0700) for tokens.db and the telemetry spool, which --dir holds otherwise', path: 'file', parse: parse.string }),
  allowMissingEku: key({ key: 'tls.allow-missing-eku', flag: 'allow-missing-eku', placeholder: 'BOOL', boolean: true, describe: 'accept peer certificates that carry no extended key usage at all (bring-your-own PKIs that omit EKUs); one that lists EKUs must still list clientAuth', default: false, parse: parse.bool }),
  cluster: key({ key: 'cluster', flag: 'cluster', placeholder: 'ID', describe: 'cluster id in peer SPIFFE URIs (required with --tls-*; read from --dir otherwise)', parse: parse.string }),
  logLevel: key({ key: 'log-level', flag: 'log-level', placeholder: 'LEVEL', describe: 'debug, info, warn or error (audit lines are always written)', default: 'info', parse: parse.oneOf(['debug', 'info', 'warn', 'error'] as const) }),
};

export type CommonConfig = SliceOf<typeof commonKeys>;
