/**
 * Finds every log event the source emits, with the TypeScript compiler:
 * a call is a log call when the method it calls is declared by the Logger
 * interface (src/log/logger.ts), whatever the receiver is named, so a
 * renamed variable or a child logger cannot hide one. A log method used
 * any other way than called with a string literal (a variable event name,
 * a method passed as a value) is reported as a problem: the scan must see
 * every name. The administrative audit trail's events are the members of
 * its AdminEvent type, which the compiler holds every caller of
 * recordChange (src/cli/record-change.ts) to; each call's event argument
 * is read as the string literals its type allows.
 */
import ts from 'typescript';
import { join, relative } from 'node:path';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'audit'] as const;

export interface EmittedEvent {
  readonly levels: Set<string>;
  /**
   * Field names the call sites pass, as far as the compiler can name them:
   * a spread of an open record (Record<string, unknown>) adds none.
   */
  readonly fields: Set<string>;
  readonly sites: string[];
}

export interface EventScan {
  /** The gateway's log stream, by event name. */
  readonly events: Map<string, EmittedEvent>;
  /** The administrative audit trail (audit.log), by event name, as recordChange is called. */
  readonly adminEvents: Map<string, EmittedEvent>;
  /** The members of the AdminEvent type. */
  readonly adminEventType: Set<string>;
  /**
   * Calls whose event is one of several (STEP_EVENTS[step]): their fields are
   * listed here, not under each event, since each event gets only some of them.
   */
  readonly sharedCalls: Array<{ readonly events: string[]; readonly fields: string[]; readonly site: string }>;
  readonly problems: string[];
}

export function scanLogEvents(root: string): EventScan {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, {
    ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); },
  });
  if (!config) throw new Error('tsconfig.json does not parse');
  const program = ts.createProgram({ rootNames: config.fileNames, options: { ...config.options, noEmit: true } });
  const checker = program.getTypeChecker();
  const loggerFile = join(root, 'src', 'log', 'logger.ts');
  const scan: EventScan = { events: new Map(), adminEvents: new Map(), adminEventType: new Set(), sharedCalls: [], problems: [] };
  const note = (into: Map<string, EmittedEvent>, event: string, level: string, fields: ts.Expression | undefined, site: string): void => {
    let e = into.get(event);
    if (!e) into.set(event, (e = { levels: new Set(), fields: new Set(), sites: [] }));
    e.levels.add(level);
    e.sites.push(site);
    if (fields) for (const f of fieldNames(checker, fields)) e.fields.add(f);
  };

  const isLoggerMethod = (node: ts.Node): boolean => declaresLogMethod(checker.getSymbolAtLocation(node));
  const declaresLogMethod = (symbol: ts.Symbol | undefined): boolean =>
    (symbol?.declarations ?? []).some((d) => ts.isMethodSignature(d) && d.getSourceFile().fileName === loggerFile
      && ts.isInterfaceDeclaration(d.parent) && d.parent.name.text === 'Logger');
  const recordChangeFile = join(root, 'src', 'cli', 'record-change.ts');
  const isRecordChange = (node: ts.Node): boolean =>
    (resolved(checker, checker.getSymbolAtLocation(node))?.declarations ?? []).some((d) => ts.isFunctionDeclaration(d) && d.name?.text === 'recordChange' && d.getSourceFile().fileName === recordChangeFile);

  for (const sf of program.getSourceFiles()) {
    if (sf.isDeclarationFile || !sf.fileName.startsWith(join(root, 'src'))) continue;
    const where = (n: ts.Node) => `${relative(root, sf.fileName)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
    const visit = (node: ts.Node): void => {
      if (ts.isTypeAliasDeclaration(node) && node.name.text === 'AdminEvent' && sf.fileName.endsWith(join('log', 'audit-trail.ts'))) {
        for (const t of literalMembers(checker.getTypeAtLocation(node))) scan.adminEventType.add(t);
      }
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && isRecordChange(node.expression)) {
        const [, event, fields] = node.arguments;
        const names = event ? literalMembers(checker.getTypeAtLocation(event)) : [];
        if (names.length === 0) scan.problems.push(`${where(node)}: recordChange without an event name the compiler can read`);
        for (const n of names) note(scan.adminEvents, n, 'audit', names.length === 1 ? fields : undefined, where(node));
        if (names.length > 1) scan.sharedCalls.push({ events: names, fields: fields ? fieldNames(checker, fields) : [], site: where(node) });
      }
      if (ts.isBindingElement(node) && ts.isObjectBindingPattern(node.parent)) {
        const key = node.propertyName ?? node.name;
        if (ts.isIdentifier(key) && declaresLogMethod(checker.getTypeAtLocation(node.parent).getProperty(key.text))) {
          scan.problems.push(`${where(node)}: a log method taken out of its logger (${node.getText()})`);
        }
      }
      const name = ts.isPropertyAccessExpression(node) ? node.name : ts.isElementAccessExpression(node) ? node.argumentExpression : undefined;
      if (name && isLoggerMethod(name) && !(ts.isPropertyAccessExpression(node) && ['child', 'raw', 'droppedLines'].includes(node.name.text))) {
        record(node, name, where(node));
      }
      ts.forEachChild(node, visit);
    };
    const record = (access: ts.Node, name: ts.Node, site: string): void => {
      const call = access.parent;
      const [event, fields] = ts.isCallExpression(call) && call.expression === access ? call.arguments : [];
      if (!event || !ts.isPropertyAccessExpression(access) || !ts.isStringLiteralLike(event)) {
        scan.problems.push(`${site}: a log method used without a string-literal event name (${access.getText()})`);
        return;
      }
      note(scan.events, event.text, name.getText(), fields, site);
    };
    visit(sf);
  }
  // child() makes a logger, raw() writes lines whose events were scanned where they were made (dataplane/), droppedLines() reads a count.
  // The logger's own event (log_lines_dropped) is a call in logger.ts, scanned like any other.
  return scan;
}

function literalMembers(type: ts.Type): string[] {
  return (type.isUnion() ? type.types : [type]).flatMap((t) => (t.isStringLiteral() ? [t.value] : []));
}

function fieldNames(checker: ts.TypeChecker, node: ts.Expression): string[] {
  const type = checker.getTypeAtLocation(node);
  return (type.isUnion() ? type.types : [type]).flatMap((t) => checker.getPropertiesOfType(t).map((s) => s.name));
}

function resolved(checker: ts.TypeChecker, s: ts.Symbol | undefined): ts.Symbol | undefined {
  return s && s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
}
