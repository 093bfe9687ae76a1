/** A raw TLS probe for terminator tests: how a connection attempt ended, and on which local port (to find its audit line). */
import { connect, type ConnectionOptions } from 'node:tls';

export interface ProbeResult {
  /** 'data': the scheduler's handshake arrived (forwarded); 'closed': the gateway closed without forwarding. */
  readonly outcome: 'data' | 'closed';
  readonly localPort: number;
  readonly error?: string;
}

/** `localAddress` (passed through to the TCP connect) picks another loopback source, e.g. 127.0.0.2. */
export function probeTls(port: number, opts: ConnectionOptions & { localAddress?: string }, timeoutMs = 15_000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, checkServerIdentity: () => undefined, ...opts });
    let localPort = 0;
    let error: string | undefined;
    s.once('connect', () => { localPort = s.localPort ?? 0; });
    const done = (outcome: ProbeResult['outcome']) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ outcome, localPort: localPort || (s.localPort ?? 0), ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => done('closed'), timeoutMs);
    s.on('data', () => done('data'));
    s.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
    s.on('close', () => done('closed'));
  });
}
