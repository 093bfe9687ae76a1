// Summarizes a V8 .heapsnapshot (node --heapsnapshot-signal): self size and
// count per constructor, to say which objects a held connection costs.
import { readFileSync } from 'node:fs';

/** Top entries by self size; perConn divides by the number of held connections. */
export function summarizeHeap(snapshot, { top = 25, perConn = 0 } = {}) {
  const { meta } = snapshot.snapshot;
  const fields = meta.node_fields;
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const types = meta.node_types[iType];
  const { nodes, strings } = snapshot;
  const groups = new Map();
  let total = 0;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    const size = nodes[i + iSize];
    total += size;
    // Strings and code are keyed by type: their "name" is their content.
    const name = ['object', 'closure', 'native', 'regexp'].includes(type) ? strings[nodes[i + iName]] : `(${type})`;
    const key = type === 'closure' ? `closure ${name}` : name;
    const g = groups.get(key) ?? { name: key, count: 0, bytes: 0 };
    g.count++;
    g.bytes += size;
    groups.set(key, g);
  }
  const rows = [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top);
  return {
    total_mib: total / 2 ** 20,
    per_conn_kib: perConn ? total / perConn / 1024 : null,
    top: rows.map((r) => ({ ...r, kib: r.bytes / 1024, per_conn: perConn ? r.count / perConn : null, per_conn_bytes: perConn ? r.bytes / perConn : null })),
  };
}

/**
 * What a held connection costs: per group, the growth in count and self size
 * from snapshot `before` (nothing held) to `after` (held connections), per connection.
 */
export function diffHeap(before, after, held, top = 30) {
  const a = new Map(summarizeHeap(before, { top: Infinity }).top.map((r) => [r.name, r]));
  const rows = summarizeHeap(after, { top: Infinity }).top.map((r) => {
    const b = a.get(r.name) ?? { count: 0, bytes: 0 };
    return { name: r.name, count: r.count - b.count, bytes: r.bytes - b.bytes };
  });
  const total = rows.reduce((n, r) => n + r.bytes, 0);
  return {
    per_conn_kib: total / held / 1024,
    top: rows.sort((x, y) => y.bytes - x.bytes).slice(0, top).map((r) => ({ ...r, per_conn: r.count / held, per_conn_bytes: r.bytes / held })),
  };
}

export function diffMarkdown(title, d) {
  const L = [`## ${title}`, '', `JS heap growth ${d.per_conn_kib.toFixed(1)} KiB per held connection`, ''];
  L.push('| constructor / type | objects per conn | bytes per conn |', '|---|---:|---:|');
  for (const r of d.top) L.push(`| \`${r.name.slice(0, 60)}\` | ${r.per_conn.toFixed(2)} | ${r.per_conn_bytes.toFixed(0)} |`);
  return L.join('\n') + '\n';
}

export function heapMarkdown(title, s) {
  const L = [`## ${title}`, '', `JS heap (self sizes) ${s.total_mib.toFixed(1)} MiB${s.per_conn_kib ? `, ${s.per_conn_kib.toFixed(1)} KiB per held connection` : ''}`, ''];
  L.push('| constructor / type | count | per conn | KiB | bytes per conn |', '|---|---:|---:|---:|---:|');
  for (const r of s.top) L.push(`| \`${r.name.slice(0, 60)}\` | ${r.count} | ${r.per_conn?.toFixed(2) ?? ''} | ${r.kib.toFixed(0)} | ${r.per_conn_bytes?.toFixed(0) ?? ''} |`);
  return L.join('\n') + '\n';
}

// `node bench/lib/heapsnapshot.mjs FILE [HELD_CONNECTIONS]`
// `node bench/lib/heapsnapshot.mjs --diff BEFORE AFTER HELD_CONNECTIONS`: growth per held connection
if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const load = (f) => JSON.parse(readFileSync(f, 'utf8'));
  if (args[0] === '--diff' && args.length === 4 && Number(args[3]) > 0) {
    process.stdout.write(diffMarkdown(`${args[1]} -> ${args[2]}`, diffHeap(load(args[1]), load(args[2]), Number(args[3]))));
  } else if (args[0] && args[0] !== '--diff') {
    process.stdout.write(heapMarkdown(args[0], summarizeHeap(load(args[0]), { perConn: Number(args[1] ?? 0) })));
  } else {
    process.stderr.write('usage: node bench/lib/heapsnapshot.mjs FILE.heapsnapshot [HELD] | --diff BEFORE AFTER HELD\n');
    process.exit(2);
  }
}
