// Lists the failed assertions of a tap run, each with the subtests that hold
// it and where it failed, so that the tail of a CI log (the only part anyone
// reads) names what failed, not only how many.
// Usage: node scripts/tap-failures.mjs test/artifacts/tap-output.txt
import { readFileSync } from 'node:fs'

const MAX_FAILURES = 20
const DETAIL_KEYS = /^(message|found|wanted|compare|fileName|lineNumber|exitCode|signal|timeout):/

const lines = readFileSync(process.argv[2], 'utf8').split('\n')
const stack = []
const failures = []
for (let i = 0; i < lines.length; i++) {
  const line = lines[i]
  const indent = line.length - line.trimStart().length
  const text = line.trim()
  if (text.startsWith('# Subtest: ')) {
    while (stack.length > 0 && stack.at(-1).indent >= indent) stack.pop()
    stack.push({ indent, name: text.slice('# Subtest: '.length), listed: false })
    continue
  }
  const point = /^(not )?ok \d+ - (.*?)(?: # time=.*)?$/.exec(text)
  if (point === null) continue
  const [, not, name] = point
  // A subtest's own result line closes it. A parent's "not ok" repeats its
  // children's, so it is listed only when none of them was (a timeout, a
  // crashed file).
  const at = stack.findLastIndex((s) => s.indent === indent && s.name === name)
  const closed = at >= 0 ? stack.splice(at)[0] : undefined
  if (not === undefined || closed?.listed === true) continue
  const path = stack.filter((s) => s.indent < indent).map((s) => s.name)
  for (const s of stack) s.listed = true
  failures.push({ path: [...path, name].join(' > '), detail: detailOf(lines, i + 1, indent) })
}

if (failures.length > 0) {
  console.log(`failed (${failures.length}):`)
  for (const f of failures.slice(0, MAX_FAILURES)) {
    console.log(`- ${f.path}`)
    for (const d of f.detail) console.log(`    ${d}`)
  }
  if (failures.length > MAX_FAILURES) console.log(`… and ${failures.length - MAX_FAILURES} more in the tap output`)
}

function detailOf(all, from, indent) {
  if (all[from]?.trim() !== '---') return []
  const out = []
  for (let j = from + 1; j < all.length && all[j].trim() !== '...'; j++) {
    const t = all[j].trim()
    if (all[j].length - all[j].trimStart().length <= indent) break
    if (DETAIL_KEYS.test(t)) out.push(t.length > 160 ? `${t.slice(0, 160)}…` : t)
    if (out.length >= 6) break
  }
  return out
}
