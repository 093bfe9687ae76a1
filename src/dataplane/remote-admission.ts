/**
 * A data-plane process's admission: every decision is the primary's
 * (broker.ts), so the limits hold across processes. The process answers the
 * primary's questions about its own live connections (reclaim candidates)
 * and cuts the one the primary picked.
 */
import type { Admission, AdmissionRefusal, ReclaimSource } from '../terminator/admission.js';
import type { ShareRefusal, Slot } from '../terminator/fair-shares.js';
import type { Role } from '../pki/identity.js';
import type { Channel } from './channel.js';
import { OP, type AdmitAnswer, type CutOrder, type PromoteAnswer, type WireCandidate } from './protocol.js';

export class RemoteAdmission implements Admission {
  readonly #ch: Channel;
  readonly #reclaim: ReclaimSource;

  constructor(ch: Channel, reclaim: ReclaimSource) {
    this.#ch = ch;
    this.#reclaim = reclaim;
    ch.handle(OP.candidates, () => this.#candidates()).handle(OP.cut, (b) => this.#cut(b as CutOrder));
  }

  async admit(address: string): Promise<Slot | AdmissionRefusal> {
    const a = await this.#ch.request<AdmitAnswer>(OP.admit, { address });
    return 'refusal' in a ? a.refusal : { source: address, key: a.key };
  }

  async promote(slot: Slot, identity: string, role: Role): Promise<ShareRefusal | null> {
    const over = await this.#ch.request<PromoteAnswer>(OP.promote, { key: slot.key, identity, role });
    if (over) return over;
    // What this process's reclaim candidates report about the slot.
    slot.identity = identity;
    slot.live = role === 'client' ? 'client' : 'cluster';
    return null;
  }

  release(slot: Slot): void {
    if (slot.released) return;
    slot.released = true;
    this.#ch.notify(OP.release, { key: slot.key });
  }

  failed(address: string): void {
    this.#ch.notify(OP.failed, { address });
  }

  async #candidates(): Promise<WireCandidate[]> {
    const out: WireCandidate[] = [];
    for (const c of await this.#reclaim()) {
      if (c.slot.key !== undefined) out.push({ key: c.slot.key, identity: c.identity, cls: c.cls, reclaimable: c.reclaimable, idleMs: c.idleMs });
    }
    return out;
  }

  async #cut(order: CutOrder): Promise<void> {
    for (const c of await this.#reclaim()) {
      if (c.slot.key === order.key) {
        // The primary already gave the slot to the newcomer: do not release it a second time.
        c.slot.released = true;
        return c.cut(order.detail);
      }
    }
  }
}
