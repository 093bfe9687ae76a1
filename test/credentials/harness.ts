/**
 * Fixtures of the credentials tests: a test gateway with the credentials
 * listener on 127.0.0.1:0, fake (well-formed, random) AWS credentials that
 * are easy to search for, curl and Node HTTPS clients presenting a given
 * certificate, and a search of every captured byte for a secret.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request, Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import type { TestCluster } from '../helpers/pki.js';
import type { Flags } from '../../src/config/load.js';

export interface Teardown { teardown(fn: () => unknown): void }

export function tempDir(t: Teardown, prefix = 'sgw-cred-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface FakeAws {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: Date;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const randomFrom = (alphabet: string, n: number) => [...randomBytes(n)].map((b) => alphabet[b % alphabet.length]).join('');

/** Random credentials in the shapes STS hands out; the session token is over 512 characters, as real ones are. */
export function fakeAws(lifetimeMs: number): FakeAws {
  return {
    accessKeyId: 'ASIA' + randomFrom('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16),
    secretAccessKey: randomFrom(B64, 40),
    sessionToken: 'IQoJb3JpZ2luX2Vj' + randomFrom(B64, 700),
    expiration: new Date(Date.now() + lifetimeMs),
  };
}

export function processJson(c: FakeAws): string {
  return JSON.stringify({ Version: 1, AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, SessionToken: c.sessionToken, Expiration: c.expiration.toISOString() });
}

export function writeCredentialsFile(file: string, c: FakeAws, mode = 0o600): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, processJson(c), { mode });
  renameSync(tmp, file); // the way a renewing sidecar replaces it
}

export interface CredGateway extends TestGateway {
  readonly credPort: number;
}

export async function startCredGateway(t: Teardown, cluster: TestCluster, flags: Flags = {}): Promise<CredGateway> {
  const tg = await startTestGateway({ cluster, scheduler: '127.0.0.1:1', flags: { 'credentials-listen': '127.0.0.1:0', ...flags }, t });
  const addr = tg.gw.addresses['credentials'];
  if (!addr) throw new Error('the credentials listener did not start');
  return Object.assign(tg, { credPort: addr.port });
}

export interface Pem { certPath?: string; keyPath?: string }

export interface HttpResult { status: number; headers: Record<string, string | string[] | undefined>; body: string; json: () => Record<string, unknown> }

/** One HTTPS GET presenting the given certificate (or none), trusting caPath. */
export function fetchCred(port: number, path: string, o: { caPath: string; cert?: Pem; agent?: Agent; method?: string }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, path, method: o.method ?? 'GET', servername: 'localhost',
      ca: readFileSync(o.caPath),
      ...(o.cert?.certPath ? { cert: readFileSync(o.cert.certPath), key: readFileSync(o.cert.keyPath!) } : {}),
      ...(o.agent ? { agent: o.agent } : { agent: false }),
      timeout: 10_000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) as Record<string, unknown> }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** curl exactly as the worker's credential_process runs it, but reporting the status. */
export function curl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every file under dir, concatenated (binary-safe search for secrets in the spool). */
export function allBytes(dir: string): Buffer {
  const parts: Buffer[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else parts.push(readFileSync(p));
    }
  };
  walk(dir);
  return Buffer.concat(parts);
}

/** The secret parts of a credential: none may appear anywhere outside a response body. */
export function secretsOf(c: FakeAws): string[] {
  return [c.secretAccessKey, c.sessionToken, c.sessionToken.slice(40, 80)];
}
