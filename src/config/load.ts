/**
 * Resolves configuration from, in rising precedence: declared defaults, a
 * config file (YAML or JSON), environment variables, command-line flags.
 * Every value goes through its key's parser; the first bad one stops the
 * start with an error that names the key and where it came from.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { configError, formatEndpoint, type Endpoint, type KeySpec } from './spec.js';

export type Flags = Record<string, string | boolean | string[]>;
export type Resolved = Record<string, unknown>;

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw configError('config', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { logLevel: 'error', maxAliasCount: 50 }); // YAML is a superset of JSON.
  } catch (e) {
    throw configError('config', `${path} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw configError('config', `${path} must hold a mapping of keys`);
  return flatten(doc as Record<string, unknown>);
}

/** {a: {b: 1}} -> {"a.b": 1}; arrays are values, not nesting. */
export function flatten(obj: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v as Record<string, unknown>, key));
    else out[key] = v;
  }
  return out;
}

export function resolveConfig(specs: readonly KeySpec[], sources: { flags: Flags; env: NodeJS.ProcessEnv; file?: Record<string, unknown> }): Resolved {
  const known = new Set(specs.map((s) => s.key));
  for (const k of Object.keys(sources.file ?? {})) {
    if (!known.has(k)) throw configError(k, 'unknown key in config file');
  }
  const out: Resolved = {};
  for (const spec of specs) {
    const fromFlag = sources.flags[spec.flag];
    const fromEnv = sources.env[spec.env];
    const fromFile = sources.file?.[spec.key];
    let raw: unknown;
    let where: string;
    if (fromFlag !== undefined) [raw, where] = [fromFlag, `--${spec.flag}`];
    else if (fromEnv !== undefined && fromEnv !== '') [raw, where] = [spec.repeatable ? fromEnv.split(',') : fromEnv, spec.env];
    else if (fromFile !== undefined) [raw, where] = [fromFile, spec.key];
    else {
      out[spec.key] = spec.default;
      continue;
    }
    try {
      out[spec.key] = spec.parse(raw, where);
    } catch (e) {
      if (e instanceof Error && 'code' in e) throw e;
      throw configError(where, (e as Error).message);
    }
  }
  return out;
}

/** The --help table for a set of keys, one line per flag. */
export function helpTable(specs: readonly KeySpec[]): string {
  return specs
    .map((s) => {
      const left = s.boolean ? `--${s.flag}` : `--${s.flag} ${s.placeholder}`;
      const def = s.default === undefined ? '' : ` (default: ${formatDefault(s.default)})`;
      return `  ${left.padEnd(34)} ${s.describe}${def} [env ${s.env}]`;
    })
    .join('\n');
}

function formatDefault(v: unknown): string {
  if (v && typeof v === 'object' && 'host' in v) return formatEndpoint(v as Endpoint);
  if (v instanceof URL) return v.href;
  return Array.isArray(v) ? v.join(',') : String(v);
}
