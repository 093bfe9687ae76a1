/**
 * README.md as a user follows it. Every fenced block is checked by its language; a block in any other
 * language fails here until this header says how to check it.
 *   sh    each command (continuation lines joined, comments dropped) is one of:
 *         - `bash FILE`: the script is in the repository;
 *         - `[npx] scheduler-gateway CMD [SUB] ...`: CMD is in bin.ts's command table, `CMD [SUB] --help`
 *           exits 0 and names every --flag the line gives; a block's `certs` commands are also run, in a
 *           scratch directory (one for the whole README), and every bundle file a later line names must exist;
 *         - `dask scheduler|worker ...`: every --flag is in that Dask command's --help, for each Dask version;
 *         - `[export] VAR=value`: a SCHEDULER_GATEWAY_* variable is named by some command's --help, a DASK_*
 *           variable is a key of Dask's configuration (the dashboard link: the template bundles write).
 *         Any other program fails.
 *   yaml  parses, and is either a telemetry allowlist the gateway accepts or Dask configuration whose every
 *         key Dask knows.
 * In the prose: scripts (scripts/, .ci/) and `npm run` scripts named exist; inline `scheduler-gateway ...`
 * and `certs|tokens|policy|telemetry SUB ...` spans get the sh rule for flags (spans listing alternatives
 * with | or ... are not commands); every flag of the dashboard's flag table is a flag of `run`.
 */
import t, { type Test } from 'tap';
import { readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse as parseYaml } from 'yaml';
import type { CommandMain } from '../../src/cli/io.js';
import { parseAllowlist } from '../../src/telemetry/allowlist.js';
import { linkTemplate } from '../../src/pki/dashboard-link.js';
import { runCli } from '../helpers/cli.js';
import { eachDaskVersion, type DaskVersion } from '../helpers/dask.js';

const root = join(import.meta.dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

interface Block { readonly lang: string; readonly body: string; readonly line: number }

const blocks: Block[] = [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].map((m) => ({
  lang: m[1]!, body: m[2]!, line: readme.slice(0, m.index).split('\n').length,
}));

/** Shell words of one line: quotes grouped and removed, a comment (# after a space) dropped. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let word = false;
  let quote: string | undefined;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word = true;
    } else if (/\s/.test(ch)) {
      if (word) out.push(cur);
      cur = '';
      word = false;
    } else if (ch === '#' && !word) {
      break;
    } else {
      cur += ch;
      word = true;
    }
  }
  if (word) out.push(cur);
  return out;
}

/** The commands of a shell block, continuation lines joined, each with the line it starts on (0: the block's first). */
function commandsOf(body: string): Array<{ argv: string[]; at: number }> {
  const out: Array<{ argv: string[]; at: number }> = [];
  let pending: { text: string; at: number } | undefined;
  body.split('\n').forEach((line, i) => {
    const text = `${pending?.text ?? ''} ${line.replace(/\\$/, '')}`;
    if (line.endsWith('\\')) return void (pending = { text, at: pending?.at ?? i });
    const argv = words(text);
    if (argv.length > 0) out.push({ argv, at: pending?.at ?? i });
    pending = undefined;
  });
  return out;
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s;
// --help is every command's (its exit code 0 is what helpOf checks).
const flagsOf = (argv: string[]) => argv.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]!).filter((f) => f !== '--help');

/** bin.ts's dispatch table: command name -> module under src/cli. */
const COMMANDS = new Map([...readFileSync(join(root, 'src', 'cli', 'bin.ts'), 'utf8').matchAll(/^\s+'?([a-z-]+)'?: \{ summary: .*import\('\.\/([a-z-]+)\.js'\)/gm)]
  .map((m) => [m[1]!, m[2]!]));

const helps = new Map<string, Promise<{ code: number; text: string }>>();
/** `scheduler-gateway CMD [SUB] --help`, run in-process as the binary would. */
function helpOf(cmd: string, sub: string | undefined): Promise<{ code: number; text: string }> {
  const key = `${cmd} ${sub ?? ''}`;
  let h = helps.get(key);
  if (!h) {
    h = import(join(root, 'src', 'cli', `${COMMANDS.get(cmd)}.js`)).then(async (m: { main: CommandMain }) => {
      const r = await runCli(cmd, m.main, [...(sub ? [sub] : []), '--help'], { cwd: tmpdir() });
      return { code: r.code, text: r.stdout + r.stderr };
    });
    helps.set(key, h);
  }
  return h;
}

/** A gateway command's name, its subcommand (a lowercase word after it, if any) and its flags. */
function gatewayCommand(argv: string[]): { cmd: string; sub: string | undefined; flags: string[] } {
  const rest = argv[0] === 'npx' ? argv.slice(2) : argv.slice(1);
  const sub = rest[1] !== undefined && /^[a-z][a-z-]*$/.test(rest[1]) ? rest[1] : undefined;
  return { cmd: rest[0] ?? '', sub, flags: flagsOf(rest) };
}

async function checkGatewayFlags(t: Test, where: string, argv: string[]): Promise<void> {
  const { cmd, sub, flags } = gatewayCommand(argv);
  if (!COMMANDS.has(cmd)) return void t.fail(`${where}: scheduler-gateway has no command '${cmd}' (${[...COMMANDS.keys()].join(', ')})`);
  const help = await helpOf(cmd, sub);
  t.equal(help.code, 0, `${where}: \`${cmd}${sub ? ` ${sub}` : ''} --help\` exits 0`);
  for (const f of flags) t.match(help.text, new RegExp(`(^|[\\s\\[(])${f}(?![\\w-])`, 'm'), `${where}: ${cmd}${sub ? ` ${sub}` : ''} has ${f}`);
}

/** What the Dask side of the README needs: flags of `dask scheduler|worker` and configuration keys. */
const dask = { flags: { scheduler: new Set<string>(), worker: new Set<string>() }, keys: new Set<string>() };
/** SCHEDULER_GATEWAY_* variables set by the README. */
const gatewayVars = new Set<string>();

function checkAssignment(t: Test, where: string, name: string, value: string): void {
  if (name.startsWith('SCHEDULER_GATEWAY_')) gatewayVars.add(name);
  else if (name.startsWith('DASK_')) {
    dask.keys.add(name.slice('DASK_'.length).toLowerCase().split('__').join('.'));
    if (name === 'DASK_DISTRIBUTED__DASHBOARD__LINK') t.equal(value, linkTemplate(8787), `${where}: the dashboard link is the one bundles write`);
  } else t.ok(/^[A-Z]$/.test(name), `${where}: ${name} is a shell variable of the example, or one the code reads`);
}

/** Where the README's certificate commands run: its paths mapped into one scratch directory, as a user follows it top to bottom. */
interface Scratch { readonly dir: string; readonly vars: Map<string, string> }
const placed = (s: Scratch, p: string) => join(s.dir, p.replace(/\$(\w+)/g, (_, v: string) => s.vars.get(v) ?? `$${v}`));

async function runCerts(t: Test, where: string, s: Scratch, argv: string[]): Promise<void> {
  const rest = argv[0] === 'npx' ? argv.slice(2) : argv.slice(1);
  const args = rest.slice(1).map((a, i, all) => (all[i - 1] === '--dir' || all[i - 1] === '--out' ? placed(s, a) : a));
  const { main } = (await import('../../src/cli/certs.js')) as { main: CommandMain };
  const r = await runCli('certs', main, args, { cwd: s.dir, env: { SCHEDULER_GATEWAY_PASSPHRASE: 'readme-test-passphrase' } });
  t.equal(r.code, 0, `${where}: \`certs ${rest[1]}\` runs (${r.stderr.trim()})`);
}

/** Bundle files a command names (certificates, keys, preloads): they must be what `certs issue` wrote. */
function checkNamedFiles(t: Test, where: string, s: Scratch, argv: string[]): void {
  for (const a of argv.filter((w) => /\/[\w.-]+\.(pem|py)$/.test(w))) t.ok(existsSync(placed(s, a)), `${where}: ${a} is a file the README's certs commands wrote`);
}

async function checkShell(t: Test, b: Block, s: Scratch): Promise<void> {
  for (const { argv: line, at } of commandsOf(b.body)) {
    const where = `README.md:${b.line + 1 + at} \`${line.slice(0, 4).join(' ')}\``;
    let argv = line[0] === 'export' ? line.slice(1) : line;
    for (let m = ASSIGNMENT.exec(argv[0] ?? ''); m; m = ASSIGNMENT.exec(argv[0] ?? '')) {
      checkAssignment(t, where, m[1]!, m[2]!);
      s.vars.set(m[1]!, m[2]!);
      argv = argv.slice(1);
    }
    const program = argv[0] === 'npx' ? argv[1] : argv[0];
    if (program === undefined) continue;
    if (program === 'bash') t.ok(existsSync(join(root, argv[1]!)), `${where}: ${argv[1]} exists`);
    else if (program === 'scheduler-gateway') {
      await checkGatewayFlags(t, where, argv);
      if (gatewayCommand(argv).cmd === 'certs') await runCerts(t, where, s, argv);
      checkNamedFiles(t, where, s, argv);
    } else if (program === 'dask' && (argv[1] === 'scheduler' || argv[1] === 'worker')) {
      for (const f of flagsOf(argv)) dask.flags[argv[1]].add(f);
      checkNamedFiles(t, where, s, argv);
    } else t.fail(`${where}: no rule for the program '${program}' (say in this file's header how to check it)`);
  }
}

function checkYaml(t: Test, b: Block): void {
  const doc = parseYaml(b.body) as Record<string, unknown>;
  const where = `README.md:${b.line}`;
  if (Object.keys(doc).every((k) => k === 'scheduler' || k === 'gateway')) {
    t.doesNotThrow(() => parseAllowlist(doc, where), `${where}: a telemetry allowlist the gateway accepts`);
  } else if (Object.keys(doc).join() === 'distributed') {
    const leaves = (o: unknown, path: string[]): string[] => (o !== null && typeof o === 'object' && !Array.isArray(o)
      ? Object.entries(o).flatMap(([k, v]) => leaves(v, [...path, k])) : [path.join('.')]);
    for (const k of leaves(doc, [])) dask.keys.add(k);
    t.pass(`${where}: Dask configuration (its keys are checked against Dask)`);
  } else t.fail(`${where}: YAML that is neither a telemetry allowlist nor Dask configuration`);
}

t.test('README opens with exactly two commands, and both scripts exist', async (t) => {
  const commands = commandsOf(blocks[0]!.body).map((c) => c.argv.join(' '));
  t.same(commands, ['bash scripts/quickstart.sh', 'bash scripts/test.sh']);
  for (const c of commands) t.ok(existsSync(join(root, c.split(' ')[1]!)), c);
  t.match(readFileSync(join(root, '.ci', 'run'), 'utf8'), /scripts\/test\.sh/, '.ci/run calls the README test command');
});

t.test('every code block of the README is checked: commands exist, take the flags given, name files they make', async (t) => {
  t.ok(COMMANDS.size >= 6 && COMMANDS.has('certs'), `bin.ts's command table was read (${[...COMMANDS.keys()].join(', ')})`);
  t.ok(blocks.length >= 7, `${blocks.length} code blocks`);
  const scratch: Scratch = { dir: mkdtempSync(join(tmpdir(), 'sgw-readme-')), vars: new Map() };
  t.teardown(() => rmSync(scratch.dir, { recursive: true, force: true }));
  for (const b of blocks) {
    if (b.lang === 'sh') await checkShell(t, b, scratch);
    else if (b.lang === 'yaml') checkYaml(t, b);
    else t.fail(`README.md:${b.line}: a \`${b.lang || 'plain'}\` block, which this test does not know how to check`);
  }
  const allHelp = (await Promise.all([...helps.values()])).map((h) => h.text).join('\n');
  for (const v of gatewayVars) t.match(allHelp, v, `${v} is read by a command (named in its --help)`);
});

t.test('scripts and npm scripts the prose names exist', async (t) => {
  const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const npmRuns = [...readme.matchAll(/`npm run ([a-z-]+)/g)].map((m) => m[1]!);
  t.ok(npmRuns.length >= 1, `${npmRuns.length} npm scripts named`);
  for (const n of npmRuns) t.ok(n in scripts, `npm run ${n}: package.json has the script`);
  const files = [...readme.matchAll(/`(?:bash )?((?:scripts|\.ci)\/[\w.-]+)`/g)].map((m) => m[1]!);
  t.ok(files.length >= 5, `${files.length} scripts named`);
  for (const f of files) t.ok(existsSync(join(root, f)), `${f} exists`);
});

t.test('inline commands of the prose and the dashboard flag table', async (t) => {
  const spans = [...readme.matchAll(/`((?:npx )?scheduler-gateway [^`]+|(?:certs|tokens|policy|telemetry) [a-z][^`]*)`/g)].map((m) => m[1]!)
    .filter((s) => !/\||\.\.\./.test(s));
  t.ok(spans.length >= 15, `${spans.length} inline commands`);
  for (const s of spans) {
    const argv = words(s);
    await checkGatewayFlags(t, `\`${s}\``, argv[0] === 'npx' || argv[0] === 'scheduler-gateway' ? argv : ['scheduler-gateway', ...argv]);
  }
  const table = readme.slice(readme.indexOf('### Flags'), readme.indexOf('### What the proxy guarantees'));
  const flags = [...table.matchAll(/^\| (`--.*?) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`(--[a-z-]+)/g)].map((f) => f[1]!));
  t.ok(flags.length >= 7, `${flags.length} flags in the table`);
  await checkGatewayFlags(t, 'the dashboard flag table', ['scheduler-gateway', 'run', ...flags]);
});

t.test('README\'s "What leaves the cluster" is the documented telemetry text, word for word', async (t) => {
  const doc = readFileSync(join(root, 'docs', 'telemetry-protocol.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## 7. What leaves the cluster'), doc.indexOf('## 8. '));
  const quoted = section.split('\n').filter((l) => l.startsWith('>')).map((l) => l.replace(/^> ?/, '')).join('\n').trim();
  const body = quoted.replace(/^### What leaves the cluster\s*/, '');
  const inReadme = readme.slice(readme.indexOf('## What leaves the cluster'));
  t.ok(inReadme.includes(body), 'README carries the section unchanged');
});

/** Dask's own words: the --help of `dask scheduler|worker` and whether each configuration key exists. */
function daskFacts(v: DaskVersion, keys: string[]): { help: Record<'scheduler' | 'worker', string>; missing: string[] } {
  const help = (cli: string) => spawnSync(v.python, ['-m', `distributed.cli.dask_${cli}`, '--help'], { encoding: 'utf8', timeout: 60_000 }).stdout;
  const probe = `import dask, distributed, json, sys
def known(k):
    try:
        dask.config.get(k)
        return True
    except KeyError:
        return False
print(json.dumps([k for k in json.loads(sys.argv[1]) if not known(k)]))`;
  const r = spawnSync(v.python, ['-c', probe, JSON.stringify(keys)], { encoding: 'utf8', timeout: 60_000 });
  return { help: { scheduler: help('scheduler'), worker: help('worker') }, missing: r.status === 0 ? JSON.parse(r.stdout) as string[] : [`(probe failed: ${r.stderr.slice(-500)})`] };
}

t.test('the Dask commands and configuration the README gives', async (t) => {
  // After the block checks above: they collected what to ask Dask.
  t.ok(dask.flags.scheduler.size > 0 && dask.flags.worker.size > 0 && dask.keys.size >= 3, 'the README names Dask flags and configuration keys');
  eachDaskVersion(t, 'dask scheduler/worker flags and configuration keys', (t, v) => {
    const facts = daskFacts(v, [...dask.keys]);
    for (const cli of ['scheduler', 'worker'] as const) {
      for (const f of dask.flags[cli]) t.match(facts.help[cli], new RegExp(`(^|[\\s,])${f}(?![\\w-])`, 'm'), `dask ${cli} has ${f}`);
    }
    t.same(facts.missing, [], `Dask knows ${[...dask.keys].join(', ')}`);
  });
});
