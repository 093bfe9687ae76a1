/**
 * SPIFFE-shaped identities: the only thing authorization ever reads.
 *   spiffe://<cluster>/worker/<name>   spiffe://<cluster>/client/<name>
 *   spiffe://<cluster>/admin/<name>    spiffe://<cluster>/scheduler
 *   spiffe://<cluster>/gateway
 * Pure functions; no I/O.
 */
export const ROLES = ['worker', 'client', 'admin', 'scheduler', 'gateway'] as const;
export type Role = (typeof ROLES)[number];
/** Roles that are issued with a name and may reach the gateway from outside. */
export const NAMED_ROLES = ['worker', 'client', 'admin'] as const;
export type PeerRole = (typeof NAMED_ROLES)[number];

export interface Identity {
  readonly cluster: string;
  readonly role: Role;
  /** Present for worker, client and admin; absent for scheduler and gateway. */
  readonly name?: string;
}

const CLUSTER_ID = /^[a-z0-9._-]{1,63}$/;
// Names end up in file names, SPIFFE paths and Dask config: keep them boring.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function isValidClusterId(s: string): boolean {
  return CLUSTER_ID.test(s) && s !== '.' && s !== '..';
}

export function isValidName(s: string): boolean {
  return NAME.test(s) && s !== '.' && s !== '..';
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export function isPeerRole(s: string): s is PeerRole {
  return (NAMED_ROLES as readonly string[]).includes(s);
}

export function roleTakesName(role: Role): boolean {
  return isPeerRole(role);
}

export function formatSpiffe(id: Identity): string {
  return roleTakesName(id.role)
    ? `spiffe://${id.cluster}/${id.role}/${id.name}`
    : `spiffe://${id.cluster}/${id.role}`;
}

/** Parses a URI; returns undefined for anything not exactly one of the shapes above. */
export function parseSpiffe(uri: string): Identity | undefined {
  if (!uri.startsWith('spiffe://')) return undefined;
  const parts = uri.slice('spiffe://'.length).split('/');
  const [cluster, role, name, ...rest] = parts;
  if (cluster === undefined || role === undefined || rest.length > 0) return undefined;
  if (!isValidClusterId(cluster) || !isRole(role)) return undefined;
  if (roleTakesName(role)) {
    if (name === undefined || !isValidName(name)) return undefined;
    return { cluster, role, name };
  }
  return name === undefined ? { cluster, role } : undefined;
}

/** Extended key usage per role, as OIDs. */
export const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;

export function ekuForRole(role: Role): string[] {
  switch (role) {
    case 'gateway':
      return [EKU.serverAuth];
    case 'worker':
    case 'scheduler':
      // Workers listen for other workers; the scheduler dials workers over Dask TLS.
      return [EKU.serverAuth, EKU.clientAuth];
    case 'client':
    case 'admin':
      return [EKU.clientAuth];
  }
}

export function describe(id: Identity): string {
  return formatSpiffe(id);
}
