/**
 * The primary's side of admission with several data-plane processes: one
 * SharedAdmission (terminator/admission.ts) for all of them, so the
 * per-address, per-identity and per-role limits and the failed-handshake
 * budget count every connection of the gateway, whichever process accepted
 * it. Slots are numbered here; each process refers to its slots by number.
 * Reclaiming asks every process for its idle candidates and tells the owner
 * of the one chosen to cut it. A process that exits gives all its slots
 * back. A process holds at most `perProcessCap` slots: its own open-files
 * limit backs only that many.
 */
import type { GatewayMetrics } from '../runtime/metrics.js';
import { SharedAdmission, isAdmissionRefusal, type Reclaimable } from '../terminator/admission.js';
import type { ShareLimits, Slot } from '../terminator/fair-shares.js';
import type { Channel } from './channel.js';
import { OP, type AdmitAnswer, type PromoteAnswer, type PromoteAsk, type WireCandidate } from './protocol.js';

const CANDIDATES_MS = 1_000;

interface Held {
  readonly process: number;
  readonly slot: Slot;
}

export interface BrokerOptions {
  readonly limits: ShareLimits;
  readonly failedHandshakesPerMinute: number;
  readonly perProcessCap: number;
  readonly metrics: Pick<GatewayMetrics, 'connectionSlots' | 'connectionsReclaimedTotal'>;
}

export class AdmissionBroker {
  readonly #o: BrokerOptions;
  readonly #admission: SharedAdmission;
  readonly #held = new Map<number, Held>();
  readonly #perProcess = new Map<number, number>();
  readonly #channels = new Map<number, Channel>();
  #next = 1;

  constructor(o: BrokerOptions) {
    this.#o = o;
    this.#admission = new SharedAdmission({ limits: o.limits, failedHandshakesPerMinute: o.failedHandshakesPerMinute, metrics: o.metrics, reclaim: () => this.#candidates() });
  }

  /** Slots held by every process. */
  get total(): number {
    return this.#admission.total;
  }

  attach(process: number, ch: Channel): void {
    this.#channels.set(process, ch);
    ch.handle(OP.admit, (b) => this.#admit(process, String((b as { address: unknown }).address)))
      .handle(OP.promote, (b) => this.#promote(b as PromoteAsk))
      .handle(OP.release, (b) => this.#release(Number((b as { key: unknown }).key)))
      .handle(OP.failed, (b) => this.#admission.failed(String((b as { address: unknown }).address)));
  }

  /** The process is gone: every slot it held is free again. */
  detach(process: number): void {
    this.#channels.delete(process);
    for (const [key, h] of [...this.#held]) if (h.process === process) this.#release(key);
    this.#perProcess.delete(process);
  }

  #admit(process: number, address: string): AdmitAnswer {
    const mine = this.#perProcess.get(process) ?? 0;
    if (mine >= this.#o.perProcessCap) {
      return { refusal: { reason: 'too_many_connections', detail: `this data-plane process holds all ${this.#o.perProcessCap} connections its open-files limit backs` } };
    }
    const slot = this.#admission.admit(address);
    if (isAdmissionRefusal(slot)) return { refusal: slot };
    const key = this.#next++;
    this.#held.set(key, { process, slot });
    this.#perProcess.set(process, mine + 1);
    return { key };
  }

  async #promote(ask: PromoteAsk): Promise<PromoteAnswer> {
    const h = this.#held.get(Number(ask.key));
    if (!h) return { reason: 'too_many_connections', detail: 'the connection ended before it was admitted' };
    return this.#admission.promote(h.slot, String(ask.identity), ask.role);
  }

  #release(key: number): void {
    // Undefined: released already (reclaimed, or its process exited).
    const h = this.#forget(key);
    if (h) this.#admission.release(h.slot);
  }

  /** Takes the slot out of its process's account; the caller says what becomes of it. */
  #forget(key: number): Held | undefined {
    const h = this.#held.get(key);
    if (!h) return undefined;
    this.#held.delete(key);
    this.#perProcess.set(h.process, (this.#perProcess.get(h.process) ?? 1) - 1);
    return h;
  }

  /** Every process's idle candidates; a process that does not answer in time offers none. */
  async #candidates(): Promise<Reclaimable[]> {
    const lists = await Promise.all([...this.#channels].map(async ([process, ch]) => {
      const list = await ch.request<WireCandidate[]>(OP.candidates, null, CANDIDATES_MS).catch(() => [] as WireCandidate[]);
      return list.flatMap((c) => this.#reclaimable(process, ch, c));
    }));
    return lists.flat();
  }

  #reclaimable(process: number, ch: Channel, c: WireCandidate): Reclaimable[] {
    const h = this.#held.get(c.key);
    if (!h || h.process !== process) return [];
    return [{
      slot: h.slot, identity: c.identity, cls: c.cls, reclaimable: c.reclaimable, idleMs: c.idleMs,
      cut: (detail) => {
        // The slot is the newcomer's now (SharedAdmission released it); the process's own release will find it gone.
        this.#forget(c.key);
        ch.notify(OP.cut, { key: c.key, detail });
      },
    }];
  }
}
