/**
 * What `client.dashboard_link` shows. Dask formats distributed.dashboard.link
 * with str.format: {host} is the host the client connected to (the gateway),
 * {port} the scheduler's own dashboard port (loopback behind the gateway,
 * never one to show), {scheme} "https" only with a dashboard TLS certificate
 * in the client's config, and every environment variable by name. So the
 * template spells out scheme and port, and a --dashboard-url may use no
 * placeholder but {host}.
 */
export function linkTemplate(port: number): string {
  return `https://{host}:${port}/status`;
}

/** Why `url` cannot be a dashboard link (undefined: it can): an https URL whose only braces are {host}. */
export function badDashboardUrl(url: string): string | undefined {
  const bare = url.replaceAll('{host}', 'gateway.invalid');
  if (url.length > 2048 || /[{}\s]/.test(bare)) return 'only {host} may appear in braces, and no whitespace';
  try {
    return new URL(bare).protocol === 'https:' ? undefined : 'it must be an https:// URL';
  } catch {
    return 'it is not a URL';
  }
}
