/**
 * Debian's Chromium, driven by playwright-core (never `npx playwright
 * install`), headless, with nothing reaching out of the machine. Each launch
 * gets a fresh profile (playwright makes a temporary --user-data-dir). With
 * `trust`, Chromium accepts the gateway's certificate by its public key
 * (--ignore-certificate-errors-spki-list) as a browser that imported the
 * cluster CA would: no failed handshakes before each connection.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { chromium, type Browser, type BrowserServer } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export function launchChromium(o: { trust?: string } = {}): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: flags(o.trust), timeout: 60_000 });
}

/**
 * A Chromium the test can kill as the OOM killer would: BrowserServer.kill()
 * SIGKILLs its whole process group, so the kernel, not the browser, ends
 * every connection (RST wherever data was still unread).
 */
export async function launchKillableChromium(o: { trust?: string } = {}): Promise<{ server: BrowserServer; browser: Browser }> {
  const server = await chromium.launchServer({ executablePath: CHROMIUM, args: flags(o.trust), timeout: 60_000 });
  return { server, browser: await chromium.connect(server.wsEndpoint()) };
}

function flags(trust: string | undefined): string[] {
  return trust === undefined ? CHROMIUM_FLAGS : [...CHROMIUM_FLAGS, `--ignore-certificate-errors-spki-list=${spkiHash(readFileSync(trust, 'utf8'))}`];
}

/** base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's SPKI list wants it. */
function spkiHash(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}
