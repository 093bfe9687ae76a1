/**
 * Resolves configuration from, in rising precedence: declared defaults, a
 * config file (YAML or JSON), environment variables, command-line flags.
 * Every value goes through its key's parser; the first bad one stops the
 * start with an error that names the key and where it came from. This is
 * the one place where unknown input becomes typed configuration, and where
 * relative paths get their base: the command's working directory, or, for a
 * value written in a config file, that file's directory.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configError, formatEndpoint, type DefaultedKey, type Endpoint, type KeyGroup, type KeySpec, type SliceOf } from './spec.js';
import { commonKeys } from './keys/common.js';
import { runGroups, runKeys, type RunConfig } from './keys/index.js';

export type Flags = Record<string, string | boolean | string[]>;

/** A config file's keys, flattened ("a.b"), and where it was read from. */
export interface ConfigFile {
  readonly path: string;
  readonly values: Readonly<Record<string, unknown>>;
}

export interface Sources {
  readonly flags: Flags;
  readonly env: NodeJS.ProcessEnv;
  readonly file?: ConfigFile;
  /** Base of relative paths given as flags, environment variables or defaults (default: the process's). */
  readonly cwd?: string;
}

export function readConfigFile(path: string): ConfigFile {
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
  if (doc === null || doc === undefined) return { path, values: {} };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw configError('config', `${path} must hold a mapping of keys`);
  return { path, values: flatten(doc as Record<string, unknown>) };
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

/** The sources of a command that takes every key of `run`: its flags, the environment, and the --config file they name. */
export function runSources(flags: Flags, env: NodeJS.ProcessEnv, cwd: string): Sources {
  const configPath = resolveKey(commonKeys.config, { flags, env, cwd });
  return { flags, env, cwd, ...(configPath !== undefined ? { file: readConfigFile(configPath) } : {}) };
}

/** Every slice of `run`; a key in the config file that no component declares is refused by name. */
export function resolveRunConfig(sources: Sources): RunConfig {
  const known = new Set(runKeys.map((s) => s.key));
  for (const k of Object.keys(sources.file?.values ?? {})) {
    if (!known.has(k)) throw configError(k, `unknown key in config file${sources.file ? ` ${sources.file.path}` : ''}`);
  }
  return {
    common: resolveSlice(runGroups.common, sources),
    terminator: resolveSlice(runGroups.terminator, sources),
    policy: resolveSlice(runGroups.policy, sources),
    dashboard: resolveSlice(runGroups.dashboard, sources),
    telemetry: resolveSlice(runGroups.telemetry, sources),
    credentials: resolveSlice(runGroups.credentials, sources),
    supervisor: resolveSlice(runGroups.supervisor, sources),
  };
}

/** One component's typed slice. */
export function resolveSlice<G extends KeyGroup>(group: G, sources: Sources): SliceOf<G> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(group)) out[name] = resolveKey(spec, sources);
  // Each value came out of its own key's parser (or is its declared default), which is what SliceOf<G> says.
  return out as SliceOf<G>;
}

/** One key: the first source that sets it, parsed, a relative path made absolute against that source's base. */
export function resolveKey<T>(spec: DefaultedKey<T>, sources: Sources): T;
export function resolveKey<T>(spec: KeySpec<T>, sources: Sources): T | undefined;
export function resolveKey<T>(spec: KeySpec<T>, sources: Sources): T | undefined {
  const cwd = sources.cwd ?? process.cwd();
  const given = givenValue(spec, sources);
  if (!given) return spec.default === undefined ? undefined : withBase(spec, spec.default, cwd);
  try {
    return withBase(spec, spec.parse(given.raw, given.where), given.base ?? cwd);
  } catch (e) {
    if (e instanceof Error && 'code' in e) throw e;
    throw configError(given.where, (e as Error).message);
  }
}

/** The value of the first source that sets the key (an empty environment variable does not), with where it came from. */
function givenValue(spec: KeySpec, sources: Sources): { raw: unknown; where: string; base?: string } | undefined {
  const fromFlag = sources.flags[spec.flag];
  if (fromFlag !== undefined) return { raw: fromFlag, where: `--${spec.flag}` };
  const fromEnv = sources.env[spec.env];
  if (fromEnv !== undefined && fromEnv !== '') return { raw: spec.repeatable ? fromEnv.split(',') : fromEnv, where: spec.env };
  const fromFile = sources.file?.values[spec.key];
  if (fromFile !== undefined) return { raw: fromFile, where: spec.key, base: dirname(sources.file!.path) };
  return undefined;
}

function withBase<T>(spec: KeySpec<T>, value: T, base: string): T {
  if (spec.path === undefined || typeof value !== 'string') return value;
  if (spec.path === 'program' && !value.includes('/')) return value;
  return resolve(base, value) as T;
}

/** Keys named by any source (command line, environment, config file), by flag. */
export function presentFlags(specs: readonly KeySpec[], sources: Sources): Set<string> {
  const out = new Set<string>();
  for (const s of specs) {
    if (givenValue(s, sources)) out.add(s.flag);
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
