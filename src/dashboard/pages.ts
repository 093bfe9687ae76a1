/** The few pages the gateway renders itself: login, refusals, upstream down. No scripts. */
import type { ServerResponse } from 'node:http';
import { applySecurityHeaders, OWN_PAGE_CSP } from './security-headers.js';

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escape(title)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}
input[type=password]{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}button{margin-top:.75rem;padding:.5rem 1rem;font:inherit}
.note{color:#555;font-size:13px}.err{color:#a00}</style></head>
<body>${body}</body></html>
`;
}

export function loginPage(next: string, message?: string): string {
  return layout(
    'Dask dashboard: sign in',
    `<h1>Dask dashboard</h1>
<p>This dashboard is for members of the cluster. Paste the access token you were given
(it starts with <code>dgw_</code>), or open the login link that came with it.</p>
${message ? `<p class="err" role="alert">${escape(message)}</p>` : ''}
<form method="post" action="/gateway/login">
<input type="hidden" name="next" value="${escape(next)}">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="off" autofocus required>
<button type="submit">Sign in</button>
</form>
<p class="note">An administrator creates tokens with <code>scheduler-gateway tokens create --name NAME</code>.</p>`,
  );
}

export function messagePage(title: string, text: string): string {
  return layout(title, `<h1>${escape(title)}</h1><p>${escape(text)}</p>`);
}

/** Writes one of our own pages, or a plain-text line for clients that do not want HTML. */
export function sendPage(res: ServerResponse, status: number, html: string, plain: string, extra: Record<string, string | string[]> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  applySecurityHeaders(res, OWN_PAGE_CSP);
  const wantsHtml = /text\/html/.test(String(res.req?.headers.accept ?? ''));
  const body = wantsHtml ? html : plain + '\n';
  res.writeHead(status, {
    ...extra,
    'content-type': wantsHtml ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}
