/**
 * One base class for every error the gateway throws. `code` is a stable API:
 * never renamed, never reused once retired (see docs/errors.md).
 * CLI commands map any GatewayError to a one-line message and exit code 2.
 */
export class GatewayError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, details: Record<string, unknown> = {}, exitCode = 2) {
    super(message);
    this.name = 'GatewayError';
    this.code = code;
    this.exitCode = exitCode;
    this.details = details;
  }
}

export interface ErrorSpec {
  readonly code: string;
  /** A message template; `{key}` is replaced from the details object. */
  readonly message: string;
}

/**
 * Builds a typed factory from a table of error specs so a module declares each
 * code once and call sites cannot misspell it.
 */
export function defineErrors<K extends string>(table: Record<K, ErrorSpec>) {
  return function makeError(key: K, details: Record<string, unknown> = {}): GatewayError {
    const spec = table[key];
    const message = spec.message.replace(/\{(\w+)\}/g, (_m, k: string) => String(details[k] ?? `{${k}}`));
    return new GatewayError(spec.code, message, details);
  };
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}
