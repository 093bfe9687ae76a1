/** Keys of the credentials endpoint and its self-hosted sources (src/credentials, docs/credentials.md). */
import { key, parse, type SliceOf } from '../spec.js';
import { parseDuration } from './telemetry.js';
import { DEFAULT_CREDENTIALS_PORT } from '../../pki/aws-config.js';

export const credentialsKeys = {
  listen: key({
    key: 'credentials.listen', flag: 'credentials-listen', placeholder: 'HOST:PORT',
    describe: `where workers fetch cloud credentials over mutual TLS (default 0.0.0.0:${DEFAULT_CREDENTIALS_PORT} once a credentials source or --control-plane is set; otherwise not opened)`,
    parse: parse.endpoint(),
  }),
  file: key({
    key: 'credentials.file', flag: 'credentials-file', placeholder: 'PATH',
    describe: 'JSON file (mode 0600) with the current short-lived credentials, re-read when it changes',
    path: 'file', parse: parse.optionalString,
  }),
  command: key({
    key: 'credentials.command', flag: 'credentials-command', placeholder: 'CMD',
    describe: 'shell command printing the credentials as JSON (e.g. a credential_process helper); run again before they expire',
    parse: parse.optionalString,
  }),
  refreshBefore: key({
    key: 'credentials.refresh-before', flag: 'credentials-refresh-before', placeholder: 'DURATION',
    describe: 'run --credentials-command this long before the held credentials expire (at most half their lifetime)',
    default: 300_000, parse: parseDuration(1000, 12 * 3_600_000),
  }),
  commandTimeout: key({
    key: 'credentials.command-timeout', flag: 'credentials-command-timeout', placeholder: 'DURATION',
    describe: 'how long --credentials-command may run before it is killed',
    default: 30_000, parse: parseDuration(100, 600_000),
  }),
  maxConnections: key({
    key: 'credentials.max-connections', flag: 'credentials-max-connections', placeholder: 'N',
    describe: 'open connections on the credentials port, handshaking ones included (lowered at start to what the open-files limit backs)', default: 256, parse: parse.int(1, 1_000_000),
  }),
  maxConnectionsPerAddress: key({
    key: 'credentials.max-connections-per-address', flag: 'credentials-max-connections-per-address', placeholder: 'N',
    describe: 'open connections on the credentials port from one source address (IPv6: one /64)', default: 32, parse: parse.int(1, 1_000_000),
  }),
};

export type CredentialsConfig = SliceOf<typeof credentialsKeys>;
