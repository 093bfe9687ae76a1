/**
 * A strict, bounded parser for the Prometheus text exposition format 0.0.4.
 * It reads text someone else produced (the scheduler, or anything that answers
 * on its port), so every line is checked and every size is capped: the first
 * violation throws a GatewayError naming the line, and nothing is half-parsed.
 * No sockets, no files: text in, samples out.
 */
import { telemetryError } from './errors.js';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
const TYPES: readonly string[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

export interface Sample {
  /** The family this sample belongs to (a histogram's `_bucket` sample names its family). */
  readonly family: string;
  readonly name: string;
  readonly type: MetricType;
  /** A prototype-less object: label names such as `__proto__` are plain keys. */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  type: MetricType;
  help: string | undefined;
  /** Whether a TYPE line declared it (a second one is an error). */
  typed: boolean;
}

export interface ParseLimits {
  readonly maxBytes: number;
  readonly maxLines: number;
  readonly maxSamples: number;
  readonly maxLabelsPerSample: number;
  readonly maxNameLength: number;
  readonly maxLabelValueLength: number;
  readonly maxHelpLength: number;
}

export const DEFAULT_LIMITS: ParseLimits = {
  maxBytes: 4 * 1024 * 1024,
  maxLines: 100_000,
  maxSamples: 50_000,
  maxLabelsPerSample: 32,
  maxNameLength: 200,
  maxLabelValueLength: 1024,
  maxHelpLength: 4096,
};

export interface Parsed {
  readonly families: ReadonlyMap<string, Family>;
  readonly samples: readonly Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count', '_created'],
  summary: ['_sum', '_count', '_created'],
  counter: ['_total', '_created'],
};

export function parsePrometheusText(text: string, limits: Partial<ParseLimits> = {}): Parsed {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  if (Buffer.byteLength(text, 'utf8') > lim.maxBytes) throw telemetryError('promTooLarge', { reason: `more than ${lim.maxBytes} bytes` });
  if (text.includes('\0')) throw telemetryError('promParse', { line: lineOf(text, text.indexOf('\0')), reason: 'NUL byte' });
  const lines = text.split('\n');
  if (lines.length > lim.maxLines) throw telemetryError('promTooLarge', { reason: `more than ${lim.maxLines} lines` });

  const families = new Map<string, Family>();
  const sampled = new Set<string>();
  const seenSeries = new Set<string>();
  const samples: Sample[] = [];

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    const fail = (reason: string) => telemetryError('promParse', { line: lineNo, reason });
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kw, name, rest = ''] = m;
      checkName(name!, lim, fail);
      const fam: Family = families.get(name!) ?? { name: name!, type: 'untyped', help: undefined, typed: false };
      if (kw === 'TYPE') {
        if (!TYPES.includes(rest.trim())) throw fail(`unknown metric type ${JSON.stringify(clip(rest))}`);
        if (fam.typed) throw fail(`second TYPE line for ${name}`);
        if (sampled.has(name!)) throw fail(`TYPE for ${name} after its samples`);
        fam.type = rest.trim() as MetricType;
        fam.typed = true;
      } else {
        if (fam.help !== undefined) throw fail(`second HELP line for ${name}`);
        if (rest.length > lim.maxHelpLength) throw fail('HELP text too long');
        fam.help = unescapeHelp(rest);
      }
      families.set(name!, fam);
      continue;
    }
    const s = parseSampleLine(line, lim, fail);
    const fam = familyOf(s.name, families);
    sampled.add(fam.name);
    const key = seriesKey(s.name, s.labels);
    if (seenSeries.has(key)) throw fail(`duplicate series ${clip(s.name)}`);
    seenSeries.add(key);
    if (samples.length >= lim.maxSamples) throw telemetryError('promTooLarge', { reason: `more than ${lim.maxSamples} samples` });
    samples.push({ family: fam.name, name: s.name, type: fam.type, labels: s.labels, value: s.value });
  }
  return { families, samples };
}

function familyOf(name: string, families: Map<string, Family>): Family {
  const direct = families.get(name);
  if (direct?.typed) return direct;
  for (const [type, suffixes] of Object.entries(SUFFIXES)) {
    for (const suf of suffixes) {
      if (!name.endsWith(suf)) continue;
      const base = families.get(name.slice(0, -suf.length));
      if (base && base.type === type) return base;
    }
  }
  if (direct) return direct;
  const fam: Family = { name, type: 'untyped', help: undefined, typed: false };
  families.set(name, fam);
  return fam;
}

interface RawSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseSampleLine(line: string, lim: ParseLimits, fail: (r: string) => Error): RawSample {
  let pos = 0;
  const nameEnd = scanWhile(line, pos, (c) => c !== '{' && c !== ' ' && c !== '\t');
  const name = line.slice(pos, nameEnd);
  checkName(name, lim, fail);
  pos = nameEnd;
  const labels: Record<string, string> = Object.create(null) as Record<string, string>;
  if (line[pos] === '{') {
    pos++;
    let count = 0;
    for (;;) {
      pos = skipBlanks(line, pos);
      if (line[pos] === '}') { pos++; break; }
      const lnEnd = scanWhile(line, pos, (c) => c !== '=' && c !== ' ' && c !== '\t' && c !== '}' && c !== ',');
      const lname = line.slice(pos, lnEnd);
      if (!LABEL_NAME.test(lname) || lname.length > lim.maxNameLength) throw fail(`invalid label name ${JSON.stringify(clip(lname))}`);
      pos = skipBlanks(line, lnEnd);
      if (line[pos] !== '=') throw fail(`expected '=' after label ${lname}`);
      pos = skipBlanks(line, pos + 1);
      if (line[pos] !== '"') throw fail(`expected '"' to open the value of label ${lname}`);
      const [value, after] = readQuoted(line, pos + 1, lim.maxLabelValueLength, fail);
      if (Object.prototype.hasOwnProperty.call(labels, lname)) throw fail(`duplicate label ${lname}`);
      if (++count > lim.maxLabelsPerSample) throw fail(`more than ${lim.maxLabelsPerSample} labels`);
      labels[lname] = value;
      pos = skipBlanks(line, after);
      if (line[pos] === ',') { pos++; continue; }
      if (line[pos] === '}') { pos++; break; }
      throw fail(`expected ',' or '}' after the value of label ${lname}`);
    }
  }
  const rest = line.slice(pos);
  const m = /^[ \t]+(\S+)(?:[ \t]+(-?\d{1,19}))?[ \t]*$/.exec(rest);
  if (!m) throw fail(`expected a value after ${clip(name)}`);
  const value = parseValue(m[1]!);
  if (value === undefined) throw fail(`invalid sample value ${JSON.stringify(clip(m[1]!))}`);
  return { name, labels, value };
}

function readQuoted(line: string, pos: number, max: number, fail: (r: string) => Error): [string, number] {
  let out = '';
  for (let i = pos; i < line.length; i++) {
    const c = line[i]!;
    if (c === '"') return [out, i + 1];
    if (c === '\\') {
      const n = line[++i];
      if (n === 'n') out += '\n';
      else if (n === '\\' || n === '"') out += n;
      else throw fail(`invalid escape \\${n ?? ''} in a label value`);
    } else {
      out += c;
    }
    if (out.length > max) throw fail(`label value longer than ${max} characters`);
  }
  throw fail('unterminated label value');
}

function parseValue(s: string): number | undefined {
  // As Go's strconv.ParseFloat (what Prometheus itself uses): case-insensitive, so prom-client's "Nan" parses.
  const lower = s.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(s) || s.length > 64) return undefined;
  return Number(s);
}

function checkName(name: string, lim: ParseLimits, fail: (r: string) => Error): void {
  if (name.length === 0 || name.length > lim.maxNameLength || !METRIC_NAME.test(name)) throw fail(`invalid metric name ${JSON.stringify(clip(name))}`);
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(n|\\)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}

function scanWhile(s: string, pos: number, ok: (c: string) => boolean): number {
  while (pos < s.length && ok(s[pos]!)) pos++;
  return pos;
}

function skipBlanks(s: string, pos: number): number {
  return scanWhile(s, pos, (c) => c === ' ' || c === '\t');
}

/** A stable identity for a series: the name plus its labels in sorted order. */
export function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels).sort();
  return JSON.stringify([name, ...keys.map((k) => [k, labels[k]])]);
}

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** Error messages quote hostile input: keep the quote short. */
function clip(s: string): string {
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
}
