/**
 * Loads the policy file and keeps the compiled policy current. Validation
 * happens in full before anything is swapped: a bad file at start stops the
 * gateway with errors naming each key; a bad file on reload keeps the old
 * policy (like certificates) and says why.
 */
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { GatewayError } from '../errors/base.js';
import { policyError } from './errors.js';
import { DEFAULT_POLICY, compilePolicy, validatePolicy, type CompiledPolicy, type PolicyDocument, type PolicySettings } from './rules.js';

export const BUILTIN_SOURCE = '(built-in default)';

/** Parses YAML or JSON text into a validated document, or throws GW_POLICY_INVALID listing every problem. */
export function parsePolicyText(text: string, source: string): PolicyDocument {
  let doc: unknown;
  try {
    doc = parseYaml(text, { logLevel: 'error', maxAliasCount: 50, uniqueKeys: true }); // YAML is a superset of JSON.
  } catch (e) {
    throw policyError('invalid', { source, problems: `not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`, errors: [] });
  }
  const problems = validatePolicy(doc);
  if (problems.length > 0) throw policyError('invalid', { source, problems: problems.join('; '), errors: problems });
  return doc as PolicyDocument;
}

export function loadPolicyFileSync(path: string): PolicyDocument {
  return parsePolicyText(readPolicyFileSync(path), path);
}

function readPolicyFileSync(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw policyError('unreadable', { source: path, why: (e as NodeJS.ErrnoException).code ?? 'error' });
  }
}

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly error?: GatewayError;
}

export class PolicyHolder {
  readonly #path: string | undefined;
  readonly #settings: PolicySettings;
  #current: CompiledPolicy;
  /** The text in force; undefined: the built-in default. */
  #text: string | undefined;

  /** Throws on a missing or invalid file: the gateway must not start with a policy it cannot read. */
  constructor(path: string | undefined, settings: PolicySettings) {
    this.#path = path;
    this.#settings = settings;
    this.#text = path === undefined ? undefined : readPolicyFileSync(path);
    const doc = this.#text === undefined || path === undefined ? DEFAULT_POLICY : parsePolicyText(this.#text, path);
    this.#current = compilePolicy(doc, settings, path ?? BUILTIN_SOURCE);
  }

  /** The policy text in force (undefined: the built-in default), for the data-plane processes (dataplane/). */
  get text(): string | undefined {
    return this.#text;
  }

  /** Puts in force a text the primary already validated; throws GW_POLICY_INVALID like a start would. */
  adopt(text: string | undefined, source: string): void {
    this.#current = compilePolicy(text === undefined ? DEFAULT_POLICY : parsePolicyText(text, source), this.#settings, source);
    this.#text = text;
  }

  current(): CompiledPolicy {
    return this.#current;
  }

  get path(): string | undefined {
    return this.#path;
  }

  /** Re-reads the file (file change; SIGHUP once the composition root routes it here). A failure keeps the policy in force. */
  async reload(): Promise<ReloadOutcome> {
    if (this.#path === undefined) return { ok: true };
    try {
      let text: string;
      try {
        text = await readFile(this.#path, 'utf8');
      } catch (e) {
        throw policyError('unreadable', { source: this.#path, why: (e as NodeJS.ErrnoException).code ?? 'error' });
      }
      this.#current = compilePolicy(parsePolicyText(text, this.#path), this.#settings, this.#path);
      this.#text = text;
      return { ok: true };
    } catch (e) {
      if (e instanceof GatewayError) return { ok: false, error: e };
      throw e;
    }
  }
}
