/**
 * The AWS shared-config snippet a worker bundle carries: a profile whose
 * credential_process is curl with the worker's certificate against the
 * gateway's credentials endpoint. botocore and the other SDKs split the
 * command with POSIX shell rules (shlex), so paths are quoted that way.
 * Pure: the caller writes the file.
 */
export const AWS_PROFILE = 'dask-worker';
/** The credentials listener's default port; the bundle writes it unless told otherwise. */
export const DEFAULT_CREDENTIALS_PORT = 8789;

export interface AwsConfigOptions {
  readonly certPath: string;
  readonly keyPath: string;
  readonly caPath: string;
  /** A DNS name or IP in the gateway certificate's SANs. */
  readonly host: string;
  readonly port: number;
  readonly profile?: string;
}

const shellWord = (s: string): string => (/^[A-Za-z0-9_./:@=+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export function credentialsUrl(host: string, port: number, path = '/v1/credentials/aws'): string {
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
}

export function awsConfigSnippet(o: AwsConfigOptions): string {
  const command = [
    'curl', '-sf', '--max-time', '10',
    '--cert', shellWord(o.certPath), '--key', shellWord(o.keyPath), '--cacert', shellWord(o.caPath),
    credentialsUrl(o.host, o.port),
  ].join(' ');
  return `# AWS credentials for this Dask worker, fetched from the gateway over mutual TLS.
# Use: AWS_CONFIG_FILE=<this file> AWS_PROFILE=${o.profile ?? AWS_PROFILE}, or append it to ~/.aws/config.
[profile ${o.profile ?? AWS_PROFILE}]
credential_process = ${command}
`;
}
