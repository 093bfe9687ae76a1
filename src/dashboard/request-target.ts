/**
 * The request target as the gateway accepts it: origin-form only, no dot
 * segments (raw or percent-encoded), no backslashes, NUL or encoded slashes
 * that an upstream might decode differently from us. Pure.
 */
export type TargetVerdict =
  | { ok: true; path: string; search: URLSearchParams; raw: string }
  | { ok: false; reason: 'bad_target' | 'path_traversal' };

const MAX_TARGET = 8192;

export function checkTarget(raw: string | undefined): TargetVerdict {
  if (!raw || raw.length > MAX_TARGET || raw[0] !== '/' || raw.startsWith('//')) return { ok: false, reason: 'bad_target' };
  const q = raw.indexOf('?');
  const rawPath = q < 0 ? raw : raw.slice(0, q);
  if (/[\\\x00-\x20\x7f]|%(?:00|2f|5c)/i.test(rawPath)) return { ok: false, reason: 'path_traversal' };
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return { ok: false, reason: 'bad_target' };
  }
  // Dot segments in the raw or the decoded form ("/../", "/%2e%2e/", "/.%2E/").
  if (decoded.split('/').some((seg) => seg === '..' || seg === '.')) return { ok: false, reason: 'path_traversal' };
  if (rawPath.split('/').some((seg) => seg === '..' || seg === '.')) return { ok: false, reason: 'path_traversal' };
  return { ok: true, path: rawPath, search: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)), raw };
}

/** The target without its `token` parameter: where the link login redirects to, and what upstream sees. */
export function withoutToken(raw: string): string {
  const q = raw.indexOf('?');
  if (q < 0) return raw;
  const params = new URLSearchParams(raw.slice(q + 1));
  params.delete('token');
  const rest = params.toString();
  return raw.slice(0, q) + (rest ? `?${rest}` : '');
}

/** What may be logged of a target: the path only, never a query (it may carry token=). */
export function loggablePath(raw: string | undefined): string {
  if (!raw) return '';
  const q = raw.indexOf('?');
  const path = (q < 0 ? raw : raw.slice(0, q)).slice(0, 256);
  return q < 0 ? path : `${path}?[redacted]`;
}

/** A post-login destination must be a local path, never another origin ("//evil", "/\\evil"). */
export function safeNext(next: string | null | undefined): string {
  if (!next || next[0] !== '/' || next.startsWith('//') || /[\\\x00-\x1f]/.test(next)) return '/';
  const t = checkTarget(next);
  return t.ok ? withoutToken(next) : '/';
}
