/**
 * Named points inside multi-step writes (the commit journal, the lifecycle
 * commands) where test/pki/crash.test.ts stops a child process with SIGKILL
 * to prove that every interruption leaves a state directory the gateway
 * loads. No probe is installed outside that test: crashPoint() does nothing.
 */
let probe: ((point: string) => void) | undefined;

export function setCrashProbe(fn: ((point: string) => void) | undefined): void {
  probe = fn;
}

export function crashPoint(point: string): void {
  probe?.(point);
}
