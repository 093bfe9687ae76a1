/**
 * Command-line tokenizer: --flag value, --flag=value, boolean flags, repeated
 * flags. It knows which flags exist so a typo is an error, not a silent no-op.
 */
import { GatewayError } from '../errors/base.js';
import type { Flags } from '../config/load.js';

export interface FlagDecl {
  readonly flag: string;
  readonly boolean?: boolean;
  readonly repeatable?: boolean;
}

export function parseArgs(argv: readonly string[], decls: readonly FlagDecl[]): { flags: Flags; positionals: string[] } {
  const byName = new Map(decls.map((d) => [d.flag, d]));
  const flags: Flags = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const decl = byName.get(name);
    if (!decl) throw new GatewayError('GW_USAGE', `unknown option --${name} (see --help)`, { flag: name });
    let value: string | boolean;
    if (decl.boolean) {
      value = eq < 0 ? true : arg.slice(eq + 1);
    } else if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new GatewayError('GW_USAGE', `option --${name} needs a value`, { flag: name });
      value = next;
      i++;
    }
    if (decl.repeatable) {
      const prev = flags[name];
      flags[name] = [...(Array.isArray(prev) ? prev : []), String(value)];
    } else {
      flags[name] = value;
    }
  }
  return { flags, positionals };
}
