/**
 * The worker addresses this gateway has seen registered (after pinning), shared
 * by all connections of one inspector factory. The broadcast guard uses it so
 * a non-admin `Client.run(workers=[...])` can only make the scheduler dial
 * real workers, not arbitrary host:port pairs (scheduler.broadcast connects to
 * whatever addresses it is given). Bounded: the oldest entries fall out first;
 * an address is never removed on disconnect because inspectors see no close,
 * and a stale entry is still an address that once passed pinning.
 */
import { hostOfAddress } from './pinning.js';

interface Entry {
  readonly host: string;
  /** The certificate (role/name) that registered the address last. */
  readonly owner: string;
}

export class WorkerDirectory {
  readonly #max: number;
  readonly #addresses = new Map<string, Entry>();
  readonly #onAdd: ((address: string, owner: string) => void) | undefined;

  /** `onAdd` tells the other data-plane processes (dataplane/): a worker's connections may land on any of them. */
  constructor(max = 65_536, onAdd?: (address: string, owner: string) => void) {
    this.#max = max;
    this.#onAdd = onAdd;
  }

  /** Records a register-worker that passed pinning; a new registration of an address takes it over. */
  add(address: string, owner: string): void {
    if (this.#record(address, owner)) this.#onAdd?.(address, owner);
  }

  /** A registration another process saw. */
  addRelayed(address: string, owner: string): void {
    this.#record(address, owner);
  }

  /** Every address with its owner, oldest first: what a new data-plane process starts from. */
  entries(): Array<[string, string]> {
    return [...this.#addresses].map(([a, e]) => [a, e.owner]);
  }

  #record(address: string, owner: string): boolean {
    const host = hostOfAddress(address);
    if (host === null) return false;
    this.#addresses.delete(address);
    this.#addresses.set(address, { host, owner });
    if (this.#addresses.size > this.#max) this.#addresses.delete(this.#addresses.keys().next().value as string);
    return true;
  }

  /**
   * Who registered the address, if anyone did. Host pinning cannot tell two
   * workers on one host apart; this can (heartbeat_worker, unregister).
   */
  ownerOf(address: string): string | undefined {
    return this.#addresses.get(address)?.owner;
  }

  hasAddress(address: string): boolean {
    return this.#addresses.has(address);
  }

  /** Scheduler.broadcast's `hosts` are matched against its host_info keys: the host part of worker addresses. */
  hasHost(host: string): boolean {
    for (const e of this.#addresses.values()) if (e.host === host) return true;
    return false;
  }
}
