/**
 * A configuration key is declared once with its flag, default and parser
 * (its environment variable follows from the flag); the loader, the --help
 * text and each component's configuration type (SliceOf) all come from these
 * declarations.
 */
import { GatewayError } from '../errors/base.js';

export interface KeySpec<T = unknown> {
  /** Dotted key in the config file, e.g. "dashboard.listen". */
  readonly key: string;
  /** Long flag without dashes, e.g. "dashboard-listen". */
  readonly flag: string;
  /** SCHEDULER_GATEWAY_ and the flag in capitals, '-' as '_'. */
  readonly env: string;
  readonly placeholder: string;
  readonly describe: string;
  readonly default?: T;
  /**
   * A file-system path: the loader resolves a relative one against the
   * working directory of the command (a value from a config file: against
   * that file's directory). 'program': only a value with a slash is a path,
   * a bare name is looked up on PATH.
   */
  readonly path?: 'file' | 'program';
  /** May appear several times on the command line (values collect into an array). */
  readonly repeatable?: boolean;
  /** A flag that takes no value. */
  readonly boolean?: boolean;
  readonly parse: (raw: unknown, key: string) => T;
}

/** A key whose default makes its value always present. */
export type DefaultedKey<T> = KeySpec<T> & { readonly default: T };

type Declared<T> = Omit<KeySpec<T>, 'env' | 'default'>;

/** Declares a key; its environment variable follows from its flag. */
export function key<T>(spec: Declared<T> & { readonly default: NoInfer<T> }): DefaultedKey<T>;
export function key<T>(spec: Declared<T>): KeySpec<T>;
export function key<T>(spec: Declared<T> & { readonly default?: T }): KeySpec<T> {
  return { ...spec, env: `SCHEDULER_GATEWAY_${spec.flag.toUpperCase().replace(/-/g, '_')}` };
}

/** The keys of one component, by the property name its typed slice uses. */
export type KeyGroup = Readonly<Record<string, KeySpec>>;

/** The typed configuration of one component: a key with a default is always set, one without may be undefined. */
export type SliceOf<G extends KeyGroup> = {
  readonly [K in keyof G]: G[K] extends DefaultedKey<infer T> ? T : G[K] extends KeySpec<infer T> ? T | undefined : never;
};

export function configError(key: string, problem: string): GatewayError {
  return new GatewayError('GW_CONFIG_INVALID', `invalid configuration: ${key}: ${problem}`, { key });
}

export const parse = {
  string(raw: unknown, key: string): string {
    if (typeof raw !== 'string' || raw.length === 0) throw configError(key, 'expected a non-empty string');
    return raw;
  },
  optionalString(raw: unknown, key: string): string | undefined {
    if (raw === undefined || raw === null || raw === '') return undefined;
    return parse.string(raw, key);
  },
  bool(raw: unknown, key: string): boolean {
    if (typeof raw === 'boolean') return raw;
    if (raw === 'true' || raw === '1' || raw === 'yes' || raw === 'on') return true;
    if (raw === 'false' || raw === '0' || raw === 'no' || raw === 'off') return false;
    throw configError(key, `expected true or false, got ${JSON.stringify(raw)}`);
  },
  int(min: number, max: number) {
    return (raw: unknown, key: string): number => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n) || n < min || n > max) throw configError(key, `expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return n;
    };
  },
  number(min: number, max: number) {
    return (raw: unknown, key: string): number => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < min || n > max) throw configError(key, `expected a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return n;
    };
  },
  oneOf<T extends string>(values: readonly T[]) {
    return (raw: unknown, key: string): T => {
      if (typeof raw !== 'string' || !(values as readonly string[]).includes(raw)) throw configError(key, `expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
      return raw as T;
    };
  },
  stringList(raw: unknown, key: string): string[] {
    const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
    if (!list || !list.every((s) => typeof s === 'string' && s.length > 0)) throw configError(key, 'expected a list of strings');
    return list as string[];
  },
  /** HOST:PORT, [v6]:PORT, or an absolute Unix socket path when allowUnix. */
  endpoint(opts: { allowUnix?: boolean } = {}) {
    return (raw: unknown, key: string): Endpoint => {
      if (typeof raw !== 'string' || raw === '') throw configError(key, 'expected HOST:PORT');
      if (opts.allowUnix && raw.startsWith('/')) return { path: raw };
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(raw);
      const port = m ? Number(m[3]) : NaN;
      if (!m || port > 65535) throw configError(key, `expected HOST:PORT${opts.allowUnix ? ' or an absolute socket path' : ''}, got ${JSON.stringify(raw)}`);
      return { host: (m[1] ?? m[2])!, port };
    };
  },
  url(protocols: readonly string[]) {
    return (raw: unknown, key: string): URL => {
      let u: URL;
      try {
        u = new URL(String(raw));
      } catch {
        throw configError(key, `expected a URL, got ${JSON.stringify(raw)}`);
      }
      if (!protocols.includes(u.protocol)) throw configError(key, `expected a ${protocols.join(' or ')} URL, got ${u.protocol}`);
      return u;
    };
  },
};

export type Endpoint = { host: string; port: number; path?: undefined } | { path: string; host?: undefined; port?: undefined };

export function formatEndpoint(e: Endpoint): string {
  if (e.path !== undefined) return e.path;
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
