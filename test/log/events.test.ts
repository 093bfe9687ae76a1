/**
 * Log events are an interface for operators' pipelines: docs/events.md
 * lists every one, and this test holds the list to what the source emits
 * (names, levels, field names) and to one naming style.
 */
import t, { type Test } from 'tap';
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanLogEvents, type EventScan } from '../helpers/log-events.js';

const root = join(import.meta.dirname, '..', '..');
const SNAKE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;

interface DocRow {
  readonly levels: string[];
  readonly fields: Set<string>;
}

/** The rows of every table under `## heading` lines for which `pick` is true, by event name. */
function documented(doc: string, pick: (heading: string) => boolean, levelColumn: boolean): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  for (const section of doc.split(/^## /m).slice(1)) {
    if (!pick(section.slice(0, section.indexOf('\n')))) continue;
    for (const line of section.split('\n')) {
      const cells = /^\| `([^`]+)` \|(.*)\|$/.exec(line);
      if (!cells) continue;
      const columns = cells[2]!.split('|');
      const fields = new Set([...columns.at(-1)!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
      // "peer facts" and "principal" stand for the field groups the page defines once.
      if (/peer facts/.test(columns.at(-1)!)) for (const f of ['conn', 'peer', 'uri', 'claimed_uri', 'serial', 'role']) fields.add(f);
      if (/principal/.test(columns.at(-1)!)) for (const f of ['token_id', 'token_name', 'serial', 'identity', 'scope', 'method']) fields.add(f);
      rows.set(cells[1]!, { levels: levelColumn ? columns[0]!.split('/').map((l) => l.trim()) : ['audit'], fields });
    }
  }
  return rows;
}

const doc = readFileSync(join(root, 'docs', 'events.md'), 'utf8');
const isTrail = (h: string) => h.startsWith('Administrative audit trail');
const isRenamed = (h: string) => h.startsWith('Renamed events');
const logDoc = documented(doc, (h) => !isTrail(h) && !isRenamed(h), true);
const trailDoc = documented(doc, isTrail, false);
const renamed = [...doc.slice(doc.indexOf('## Renamed events')).matchAll(/^\| `([^`]+)` \| `([^`]+)` \|$/gm)].map((m) => [m[1]!, m[2]!] as const);
const scan = scanLogEvents(root);

const sorted = (s: Iterable<string>) => [...s].sort();

function agree(t: Test, emitted: EventScan['events'], docRows: Map<string, DocRow>): void {
  t.same(sorted(emitted.keys()).filter((e) => !docRows.has(e)), [], 'every emitted event is documented');
  t.same(sorted(docRows.keys()).filter((e) => !emitted.has(e)), [], 'every documented event is emitted');
  for (const [name, e] of emitted) {
    const row = docRows.get(name);
    if (!row) continue;
    t.same(sorted(e.levels), sorted(row.levels), `${name}: levels (${e.sites.join(', ')})`);
    t.same(sorted(e.fields).filter((f) => !row.fields.has(f)), [], `${name}: every field the source passes is documented`);
  }
}

t.test('the scan sees every call and every name', async (t) => {
  t.same(scan.problems, []);
  t.ok(scan.events.size > 50 && scan.adminEvents.size > 5, `the scan found ${scan.events.size} log events and ${scan.adminEvents.size} audit-trail events`);
});

t.test('docs/events.md lists exactly the log events the source emits, with their levels and fields', async (t) => {
  agree(t, scan.events, logDoc);
});

t.test('docs/events.md lists exactly the audit-trail events, and so does the AdminEvent type', async (t) => {
  agree(t, scan.adminEvents, trailDoc);
  t.same(sorted(scan.adminEventType), sorted(scan.adminEvents.keys()), 'every AdminEvent is recorded somewhere');
  for (const c of scan.sharedCalls) {
    t.same(c.fields.filter((f) => !c.events.some((e) => trailDoc.get(e)?.fields.has(f))), [], `${c.site}: every field is documented for one of ${c.events.join(', ')}`);
  }
});

t.test('every event and field name is snake_case', async (t) => {
  const names = [...scan.events.keys(), ...scan.adminEvents.keys()];
  const fields = [...scan.events.values(), ...scan.adminEvents.values()].flatMap((e) => [...e.fields]);
  const documentedFields = [...logDoc.values(), ...trailDoc.values()].flatMap((r) => [...r.fields]);
  t.same(names.filter((n) => !SNAKE.test(n)), []);
  t.same([...new Set([...fields, ...documentedFields])].filter((f) => !SNAKE.test(f)).sort(), []);
});

/** Events a call passes an error to under `err`: operators grep and alert on one name, `error`. */
function underErr(events: EventScan['events']): string[] {
  return [...events].filter(([, e]) => e.fields.has('err')).map(([name, e]) => `${name} (${e.sites.join(', ')})`);
}

t.test('an error is logged under `error`, never `err`', async (t) => {
  t.same(underErr(scan.events), [], 'no log call has an err field');
  t.same(underErr(scan.adminEvents), [], 'no audit-trail record has an err field');
  t.same([...logDoc, ...trailDoc].filter(([, row]) => row.fields.has('err')).map(([name]) => name), [], 'docs/events.md lists no err field');
  const s = scanFixture(t, [
    "export function f(log: Logger, e: unknown): void {",
    "  log.error('named_error', { error: e });",
    "  const fields = { seq: 1, err: e };",
    "  log.warn('short_error', fields);",
    "}",
  ]);
  t.same(underErr(s.events), ['short_error (src/uses.ts:5)'], 'the check sees an err field, even one passed in a variable');
});

t.test('every renamed event maps to a documented event and is no longer emitted', async (t) => {
  t.ok(renamed.length > 0, 'the renamed table is parsed');
  for (const [old, now] of renamed) {
    t.notOk(scan.events.has(old), `${old} is not emitted`);
    t.ok(logDoc.has(now), `${now} is documented`);
  }
});

/** Scans a project of the gateway's logger and one file, src/uses.ts, of these lines. */
function scanFixture(t: Test, lines: string[]): EventScan {
  const dir = t.testdir({ src: { log: {}, 'uses.ts': ["import type { Logger } from './log/logger.js';", ...lines].join('\n') } });
  copyFileSync(join(root, 'src', 'log', 'logger.ts'), join(dir, 'src', 'log', 'logger.ts'));
  writeFileSync(join(dir, 'tsconfig.json'), readFileSync(join(root, 'tsconfig.json')));
  return scanLogEvents(dir);
}

t.test('the scan refuses an event name it cannot read', async (t) => {
  const s = scanFixture(t, [
    "export function f(log: Logger, name: string): void {",
    "  log.info('literal_event', { a: 1 });",
    "  log.warn(name);",
    "  const audit = log.audit;",
    "  audit('hidden_event');",
    "  const { error: e } = log;",
    "  e('also_hidden');",
    "}",
  ]);
  t.same(sorted(s.events.keys()), ['literal_event', 'log_lines_dropped'], 'and the logger\'s own event, copied with it');
  t.same(sorted(s.events.get('literal_event')!.fields), ['a']);
  t.match(s.problems, [/uses\.ts:4: .*log\.warn/, /uses\.ts:5: .*log\.audit/, /uses\.ts:7: .*error: e/]);
  t.equal(s.problems.length, 3);
});
