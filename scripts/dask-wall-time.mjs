#!/usr/bin/env node
// Sums test/artifacts/dask-wall-time.jsonl (written by eachDaskVersion in
// test/helpers/dask.ts): the wall time the suite spent in each Dask version's
// end-to-end subtests. Prints one line per version; nothing when no file.
import { existsSync, readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'test/artifacts/dask-wall-time.jsonl';
if (!existsSync(file)) process.exit(0);
const by = new Map();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const { version, file: f, ms } = JSON.parse(line);
  const v = by.get(version) ?? { ms: 0, subtests: 0, files: new Set() };
  v.ms += ms;
  v.subtests += 1;
  v.files.add(f);
  by.set(version, v);
}
for (const [version, v] of [...by].sort()) {
  console.log(`Dask ${version}: ${(v.ms / 1000).toFixed(0)} s of end-to-end subtests (${v.subtests} subtests in ${v.files.size} files; files run two at a time)`);
}
