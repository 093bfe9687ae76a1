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

export function heapMarkdown(title, s) {
  const L = [`## ${title}`, '', `JS heap (self sizes) ${s.total_mib.toFixed(1)} MiB${s.per_conn_kib ? `, ${s.per_conn_kib.toFixed(1)} KiB per held connection` : ''}`, ''];
  L.push('| constructor / type | count | per conn | KiB | bytes per conn |', '|---|---:|---:|---:|---:|');
  for (const r of s.top) L.push(`| \`${r.name.slice(0, 60)}\` | ${r.count} | ${r.per_conn?.toFixed(2) ?? ''} | ${r.kib.toFixed(0)} | ${r.per_conn_bytes?.toFixed(0) ?? ''} |`);
  return L.join('\n') + '\n';
}

// `node bench/lib/heapsnapshot.mjs FILE [HELD_CONNECTIONS]`
if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  const [file, held] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/lib/heapsnapshot.mjs FILE.heapsnapshot [HELD]\n');
    process.exit(2);
  }
  const s = summarizeHeap(JSON.parse(readFileSync(file, 'utf8')), { perConn: Number(held ?? 0) });
  process.stdout.write(heapMarkdown(file, s));
}
