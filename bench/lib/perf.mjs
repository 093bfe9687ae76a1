// Native CPU profile of a contender with Linux perf (when installed and
// allowed): where the whole process spends CPU, kernel and OpenSSL included,
// which --cpu-prof cannot see. Used by --profile runs, for every contender,
// so the gateway's split can be set beside haproxy's for the same axis.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { processTree, runCommand, startProcess } from './proc.mjs';

export function perfAvailable() {
  const r = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * Starts sampling pid at 999 Hz into file; resolves once perf is attached
 * (it takes a moment, and a short axis would otherwise go unsampled);
 * stop() ends it with SIGINT so perf writes its data.
 */
export async function startPerf(pid, file, logDir, name) {
  const p = startProcess(name, 'perf', ['record', '-F', '999', '-p', processTree(pid).join(','), '-o', file, '-q'], { logDir });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return {
    async stop() {
      if (p.exited) return;
      p.child.kill('SIGINT');
      const t = setTimeout(() => p.child.kill('SIGKILL'), 15000);
      await p.exitPromise;
      clearTimeout(t);
    },
  };
}

const CATEGORIES = [
  ['crypto: AES-GCM', /aes|gcm|ghash|ctr32/i],
  ['crypto: ECDSA/ECDH/bignum', /ecp_|nistz|x25519|ecdsa|ec_|bn_|BN_|mul_mont|sqr_mont|sha256|sha512|sha3|keccak|EVP_Digest|hmac/i],
  ['OpenSSL other', /^(SSL_|ssl_|tls_|ossl_|OSSL_|EVP_|X509|x509|ASN1|asn1|d2i_|i2d_|OPENSSL_|CRYPTO_|ERR_|BIO_|PEM_|OBJ_|CRYPTO|evp_|decoder|encoder|provider|property|ossl)/],
  ['kernel: scheduling/wakeups', /finish_task_switch|schedule|_raw_spin_unlock|try_to_wake_up|ttwu|futex|do_syscall|entry_SYSCALL|syscall_return|__x64_sys_epoll|ep_poll|epoll/],
  ['kernel: TCP/loopback stack', /tcp_|ip_|skb|sock_|sk_|net_|__dev_queue|loopback|softirq|inet_|__netif|napi|raw_local|dst_|nf_|release_sock/],
  ['kernel: copies/memory', /copy_|_copy|memcpy|memset|page_fault|clear_page|kmem|kmalloc|kfree|__alloc|free_|slab|check_object_size|mm_/],
  ['locks (pthread; OpenSSL 3 takes rwlocks per lookup)', /pthread_|lll_lock|lll_unlock/],
  ['V8/JS (JIT, builtins, GC)', /^Builtins_|v8::|^\[JIT\]|Heap|Scavenge|MarkCompact|GC|LoadIC|StoreIC|Interpreter|Runtime_/],
  ['libc malloc/memmove', /malloc|free|memmove|memcpy|memset|calloc|realloc|_int_/],
  ['libuv/node', /^uv_|uv__|node::/],
];

function categorize(dso, sym) {
  const kernel = dso.includes('kernel');
  for (const [name, re] of CATEGORIES) {
    // Kernel symbols fall only in kernel categories, user-space ones only in the others.
    if (kernel === name.startsWith('kernel') && re.test(sym)) return name;
  }
  if (kernel) return 'kernel: other';
  if (/^\[JIT\]/.test(dso)) return 'V8/JS (JIT, builtins, GC)';
  if (/libcrypto|libssl/.test(dso)) return 'OpenSSL (stripped library: crypto and TLS together)';
  return `other (${dso})`;
}

/** Per-symbol and per-category shares of the samples in file. */
export async function perfSummary(file, top = 20) {
  if (!existsSync(file)) return null;
  const r = await runCommand('perf', ['report', '-i', file, '--stdio', '--no-children', '--sort', 'dso,sym', '--percent-limit', '0.01'], { timeoutMs: 120000 });
  // "# Samples: 12K of event ..." (not the "Total Lost Samples" line above it).
  const sm = /^# Samples: (\d+)([KM]?)/m.exec(r.stdout);
  const samples = sm ? Number(sm[1]) * ({ K: 1e3, M: 1e6 }[sm[2]] ?? 1) : 0;
  const rows = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.+?)\s*$/.exec(line);
    if (m) rows.push({ pct: Number(m[1]), dso: m[2], sym: m[3] });
  }
  const cats = new Map();
  for (const row of rows) {
    const c = categorize(row.dso, row.sym);
    cats.set(c, (cats.get(c) ?? 0) + row.pct);
  }
  const listed = rows.reduce((n, x) => n + x.pct, 0);
  if (rows.length && listed < 99.5) cats.set('(symbols under 0.01% each)', 100 - listed);
  return {
    samples,
    categories: [...cats].sort((a, b) => b[1] - a[1]).map(([name, pct]) => ({ name, pct })),
    symbols: rows.slice(0, top),
  };
}

export function perfMarkdown(title, s) {
  if (!s) return `## ${title}\n\nno perf data\n`;
  const L = [`## ${title}`, '', `${s.samples} samples at 999 Hz (≈ ${(s.samples / 999).toFixed(2)} CPU s)`, ''];
  L.push('| category | % |', '|---|---:|');
  for (const c of s.categories) L.push(`| ${c.name} | ${c.pct.toFixed(1)} |`);
  L.push('', '| symbol | object | % |', '|---|---|---:|');
  for (const x of s.symbols) L.push(`| \`${x.sym.slice(0, 70)}\` | ${x.dso} | ${x.pct.toFixed(1)} |`);
  return L.join('\n') + '\n';
}

/**
 * The contender's CPU cost per unit of work, from /proc (reliable totals);
 * perf only splits it (its sample counts undercount on this VM).
 */
function unitCost(axis, r) {
  if (!r || r.error) return null;
  if (axis === 'bulk') return { label: 'CPU ms per GiB', total: r.cpu_s_per_gib * 1000 };
  if (axis === 'handshake') return { label: 'CPU ms per handshake', total: r.cpu_ms_per_handshake };
  if (axis === 'pingpong' || axis === 'multi') return { label: 'CPU µs per round trip', total: r.cpu_us_per_rt };
  return null;
}

/** One table per axis: each category's share of the contender's CPU cost per unit of work. */
export function perfComparison(perf, axes) {
  const byAxis = new Map();
  for (const [tag, s] of Object.entries(perf)) {
    if (!s) continue;
    // Tags are <axis>-<contender>-r<run>: each run was profiled and is costed by its own /proc figures.
    const [, axis, contender, run] = /^([a-z]+)-(.+)-r(\d+)$/.exec(tag) ?? [];
    if (!axis) continue;
    if (!byAxis.has(axis)) byAxis.set(axis, []);
    const own = axes[axis]?.[contender]?.runs?.find((x) => x.run === Number(run));
    byAxis.get(axis).push({ contender: `${contender} r${run}`, s, unit: unitCost(axis, own) });
  }
  const L = ['# Contender CPU per unit of work, split by category', '',
    'Totals are /proc utime+stime over the work done; the split is the share of perf samples (sample counts in the last row: few samples mean a rough split).', ''];
  const fmt = (v) => (v === null || v === undefined || Number.isNaN(v) ? '—' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  for (const [axis, runs] of byAxis) {
    const unit = runs.find((r) => r.unit)?.unit.label ?? 'CPU';
    const cats = [...new Set(runs.flatMap((r) => r.s.categories.map((c) => c.name)))];
    const cost = (r, pct) => (r.unit ? (r.unit.total * pct) / 100 : null);
    L.push(`## ${axis} (${unit})`, '', `| category | ${runs.map((r) => r.contender).join(' | ')} |`, `|---|${runs.map(() => '---:|').join('')}`);
    L.push(`| **total** | ${runs.map((r) => `**${fmt(cost(r, 100))}**`).join(' | ')} |`);
    const rows = cats.map((c) => ({ c, vals: runs.map((r) => cost(r, r.s.categories.find((x) => x.name === c)?.pct ?? 0)) }));
    rows.sort((a, b) => Math.max(...b.vals.map((v) => v ?? 0)) - Math.max(...a.vals.map((v) => v ?? 0)));
    for (const row of rows) if (row.vals.some((v) => v !== null && v >= 0.005 * Math.max(...runs.map((r) => r.unit?.total ?? 0)))) L.push(`| ${row.c} | ${row.vals.map(fmt).join(' | ')} |`);
    L.push(`| perf samples | ${runs.map((r) => r.s.samples).join(' | ')} |`, '');
  }
  return L.join('\n');
}
