/**
 * Per-connection wire-aware authorization for the 8786 terminator: implements
 * terminator/inspector.ts's StreamInspector on top of the frame parser
 * (wire/frame-parser.ts: canonical framing, messages held until decided), the
 * frame-0 scanner (wire/ops.ts: fields read as Python reads them) and the
 * pure decide() (decide.ts), and adds what needs connection state:
 *   - the first message from the peer must be the handshake map;
 *   - after register-client / register-worker the connection is a stream bound
 *     to the declared client id / worker address; later messages naming
 *     another one are refused;
 *   - worker address and name pinning (pinning.ts);
 *   - the forward guard on broadcast and proxy (forward-guard.ts);
 *   - a nanny's `{"status": ...}` answer after register_nanny (2023.9+).
 *
 * Two ways to say no. A request the policy does not allow, on a request
 * connection, is dropped whole and answered in Dask's words (wire/reply.ts),
 * so the caller's Python raises with the gateway, the operation and the rule,
 * and the connection goes on. Anything attack-shaped - a framing or frame-0
 * violation, a pinning violation, any refusal on a stream (which has no
 * replies) - closes the connection. The answer waits, if need be, until the
 * scheduler's side of the connection is between messages and has answered
 * every request forwarded before the refused one.
 *
 * The terminator audits and counts what this returns; policy_denials_total
 * keeps a small label set: Denial.op is a catalog op or "(unknown)" (the raw
 * op goes into detail) and a framing violation's rule is its GW_WIRE_* code.
 * wire_errors_total is counted here.
 */
import { GatewayError } from '../errors/base.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import type { Denial, InspectorFactory, InspectorHooks, PeerInfo, StreamInspector } from '../terminator/inspector.js';
import { MessageBoundaries } from '../wire/boundaries.js';
import { DROP, FrameParser, type Frame0Sink, type FrameLimits } from '../wire/frame-parser.js';
import { Frame0Scanner, DEFAULT_SCAN_LIMITS, type OpMap, type OpVisitor, type ScanLimits, type TopShape } from '../wire/ops.js';
import { errorReply, feedRefusal, registerWorkerRefusal, streamStartRefusal } from '../wire/reply.js';
import { wireError } from '../wire/errors.js';
import { FORWARDING_OPS, forwardProblem } from './forward-guard.js';
import { ADDRESS_PINNED_OPS, ADDRESS_REQUIRED_OPS, CLIENT_STREAM_OPS, KNOWN_OPS, STREAM_OPENERS, UNPICKLED_ARGUMENTS, WORKER_FIELD_PINNED_OPS, WORKER_STREAM_OPS } from './catalog.js';
import { decide } from './decide.js';
import { DENIAL_CODES } from './errors.js';
import { allowedHosts, hostOfAddress } from './pinning.js';
import { WorkerDirectory } from './worker-directory.js';
import type { CompiledPolicy } from './rules.js';

export interface PolicySource {
  current(): CompiledPolicy;
}

export interface InspectorDeps {
  readonly log: Logger;
  readonly metrics: Pick<GatewayMetrics, 'wireErrorsTotal'>;
  readonly limits: FrameLimits;
  readonly scan?: ScanLimits;
  /** Seconds since the epoch, for the `time` of a registration refusal. */
  readonly now?: () => number;
}

export function createInspectorFactory(policy: PolicySource, deps: InspectorDeps, workers = new WorkerDirectory()): InspectorFactory {
  return (peer, hooks) => new ConnectionInspector(peer, policy, deps, hooks, workers);
}

const enum Mode {
  Handshake,
  Rpc,
  ClientStream,
  WorkerStream,
  UnboundStream,
}

/** The pseudo-client `fire_and_forget` names in client-desires-keys (client.py; scheduler.py keeps a ClientState for it). */
const FIRE_AND_FORGET = 'fire-and-forget';

const SHORT_REASON: Record<string, string> = {
  [DENIAL_CODES.denied]: 'op-denied',
  [DENIAL_CODES.unknownOp]: 'unknown-op',
  [DENIAL_CODES.pickled]: 'pickled',
  [DENIAL_CODES.role]: 'role',
  [DENIAL_CODES.pinAddress]: 'pin-address',
  [DENIAL_CODES.pinName]: 'pin-name',
  [DENIAL_CODES.pinStream]: 'pin-stream',
  [DENIAL_CODES.forward]: 'forward-guard',
  [DENIAL_CODES.argument]: 'unpickled-argument',
};

/** A decision on one op-map: allowed, refused with an answer, or closed. */
interface Refusal {
  readonly denial: Denial;
  /** Answer it and go on (a request on a request connection); otherwise close. */
  readonly polite: boolean;
}

export class ConnectionInspector implements StreamInspector, Frame0Sink<Denial>, OpVisitor<Refusal> {
  readonly #peer: PeerInfo;
  readonly #policySource: PolicySource;
  readonly #deps: InspectorDeps;
  readonly #hooks: InspectorHooks;
  readonly #parser: FrameParser<Denial>;
  readonly #scanner: Frame0Scanner;
  readonly #hosts: ReadonlySet<string>;
  readonly #workers: WorkerDirectory;
  readonly #downstream = new MessageBoundaries();
  #mode = Mode.Handshake;
  #policy: CompiledPolicy;
  #boundClient: string | null = null;
  #boundWorker: string | null = null;
  #expectNannyStatus = false;
  #audited: Set<string> | null = null;
  #denial: Denial | null = null;
  /** Answers waiting for the scheduler's side to reach a boundary with no forwarded request unanswered. */
  #answers: Buffer[] = [];
  /** Forwarded requests that expect a reply and have not had one yet. */
  #awaiting = 0;
  /** The scheduler's handshake has gone by (it is not a reply). */
  #downstreamStarted = false;
  // Set while scanning one frame 0.
  #answer: Buffer | null = null;

  constructor(peer: PeerInfo, policy: PolicySource, deps: InspectorDeps, hooks: InspectorHooks, workers = new WorkerDirectory()) {
    this.#workers = workers;
    this.#peer = peer;
    this.#policySource = policy;
    this.#policy = policy.current();
    this.#deps = deps;
    this.#hooks = hooks;
    this.#parser = new FrameParser<Denial>(deps.limits, this);
    this.#scanner = new Frame0Scanner(deps.scan ?? DEFAULT_SCAN_LIMITS);
    this.#hosts = allowedHosts(peer.remoteAddress, peer.sanHosts);
  }

  get bufferedBytes(): number {
    return this.#parser.bufferedBytes;
  }

  fromPeer(chunk: Buffer, up: Buffer[], down: Buffer[]): Denial | null {
    if (this.#denial !== null) return this.#denial;
    const r = this.#parser.push(chunk, up);
    if (this.#answers.length > 0 && this.#canAnswer()) this.#takeAnswers(down);
    if (r === null) return null;
    this.#denial = r instanceof GatewayError ? this.#wireDenial(r) : r;
    return this.#denial;
  }

  fromScheduler(chunk: Buffer, down: Buffer[]): Denial | null {
    let from = 0;
    let written = 0;
    for (;;) {
      const end = this.#downstream.next(chunk, from);
      if (end < 0) break;
      from = end;
      if (!this.#downstreamStarted) this.#downstreamStarted = true;
      else if (this.#awaiting > 0) this.#awaiting--;
      if (this.#answers.length > 0 && this.#awaiting === 0) {
        down.push(written === 0 && end === chunk.length ? chunk : chunk.subarray(written, end));
        this.#takeAnswers(down);
        written = end;
      }
    }
    if (written < chunk.length) down.push(written === 0 ? chunk : chunk.subarray(written));
    return null;
  }

  /** Between two messages from the scheduler, its handshake gone by, every forwarded request answered. */
  #canAnswer(): boolean {
    return this.#downstreamStarted && this.#awaiting === 0 && this.#downstream.atBoundary;
  }

  #takeAnswers(down: Buffer[]): void {
    for (const a of this.#answers) down.push(a);
    this.#answers = [];
  }

  /** Frame0Sink: one complete frame 0 from the peer. */
  frame0(buf: Buffer, start: number, end: number, frames: number): Denial | typeof DROP | null {
    this.#policy = this.#policySource.current(); // a reload applies from the next message on
    this.#answer = null;
    const r = this.#scanner.scan(buf, start, end, this, frames);
    if (r === null) return null;
    if (r instanceof GatewayError) return this.#wireDenial(r);
    if (!r.polite) return r.denial;
    this.#hooks.refused(r.denial);
    if (this.#answer !== null) this.#answers.push(this.#answer);
    return DROP;
  }

  begin(shape: TopShape): Refusal | null {
    switch (this.#mode) {
      case Mode.Handshake:
        return shape === 'map' ? null : this.#close(this.#wireDenial(wireError('badHandshake', { why: `got a ${shape}` })));
      case Mode.Rpc:
        // A request must be a map with "op"; the scheduler closes on anything else.
        return shape === 'map' ? null : this.#close(this.#wireDenial(wireError('notAnOp', { why: `a ${shape} on a request connection` })));
      default:
        return null; // Streams carry lists of op-maps, a single map, or a bare "OK".
    }
  }

  nonMap(_index: number, pickled: boolean): Refusal | null {
    if (!pickled) return null; // ignored by the scheduler's stream loop
    return this.#close(this.#policyDenial('(none)', 'rules.pickled', DENIAL_CODES.pickled, 'a __Pickled__ placeholder outside any op'));
  }

  map(m: OpMap): Refusal | null {
    if (this.#mode === Mode.Handshake) {
      if (m.op !== undefined) return this.#close(this.#wireDenial(wireError('badHandshake', { why: 'it carries an op' })));
      if (m.pickled || m.serialized) return this.#close(this.#wireDenial(wireError('badHandshake', { why: 'it carries a placeholder' })));
      this.#mode = Mode.Rpc;
      return null;
    }
    if (this.#expectNannyStatus) {
      this.#expectNannyStatus = false;
      // 2023.9+: the nanny answers the scheduler's reply on the same comm; add_nanny reads and discards it.
      if (this.#mode === Mode.Rpc && m.op === undefined && m.entries === 1 && typeof m.status === 'string') return null;
    }
    if (m.op === undefined) return this.#close(this.#wireDenial(wireError('notAnOp', { why: 'a map without "op"' })));
    if (m.op === null) return this.#close(this.#wireDenial(wireError('notAnOp', { why: '"op" is not a short string' })));
    const op = m.op;
    const role = this.#peer.identity.role;
    const d = decide(this.#policy, role, op, m);
    if (d.effect === 'deny') return this.#refuse(op, m, this.#policyDenial(op, d.rule, d.code, d.reason));
    if (d.audit) this.#auditOnce(op, d.rule);
    const refused = this.#guard(op, m);
    if (refused !== null) return refused;
    if (this.#mode === Mode.Rpc) {
      if (m.reply && op !== STREAM_OPENERS.client && op !== STREAM_OPENERS.worker) this.#awaiting++;
      if (op === 'register_nanny') this.#expectNannyStatus = true;
    }
    return null;
  }

  /** What the role's grant does not cover: arguments, pinning, the broadcast guard, streams. */
  #guard(op: string, m: OpMap): Refusal | null {
    const admin = this.#peer.identity.role === 'admin';
    const unpickled = UNPICKLED_ARGUMENTS[op];
    if (!admin && unpickled !== undefined && m.key) {
      return this.#refuse(op, m, this.#policyDenial(op, 'unpickled-argument', DENIAL_CODES.argument, `${op} with ${unpickled.argument} set: ${unpickled.why} (admin only)`));
    }
    const pinned = this.#pin(op, m);
    if (pinned !== null) return this.#close(pinned);
    if (!admin && FORWARDING_OPS.has(op)) {
      const problem = forwardProblem(op, m, this.#workers);
      if (problem !== null) return this.#refuse(op, m, this.#policyDenial(op, 'forward-guard', DENIAL_CODES.forward, problem));
    }
    const problem = this.#streamProblem(op, m);
    if (problem !== null) return this.#close(this.#policyDenial(op, 'pin-stream', DENIAL_CODES.pinStream, problem));
    if (op === STREAM_OPENERS.client || op === STREAM_OPENERS.worker || op === 'connection_stream') return this.#openStream(op, m);
    return null;
  }

  #pin(op: string, m: OpMap): Denial | null {
    if (ADDRESS_PINNED_OPS.has(op)) {
      if (m.address === undefined) {
        if (ADDRESS_REQUIRED_OPS.has(op)) return this.#policyDenial(op, 'pin-address', DENIAL_CODES.pinAddress, `${op} declares no address`);
      } else {
        const host = m.address === null ? null : hostOfAddress(m.address);
        if (host === null || !this.#hosts.has(host)) {
          return this.#policyDenial(op, 'pin-address', DENIAL_CODES.pinAddress, `${op} declares address ${clip(m.address)}, which is neither the peer's source address nor a SAN of its certificate`);
        }
        const owner = op === STREAM_OPENERS.worker ? undefined : this.#workers.ownerOf(m.address as string);
        if (owner !== undefined && owner !== this.#ownerName()) {
          return this.#policyDenial(op, 'pin-address', DENIAL_CODES.pinAddress, `${op} speaks for ${clip(m.address)}, which ${owner} registered`);
        }
      }
    }
    if (WORKER_FIELD_PINNED_OPS.has(op) && m.worker !== undefined) {
      const host = m.worker === null ? null : hostOfAddress(m.worker);
      if (host === null || !this.#hosts.has(host)) return this.#policyDenial(op, 'pin-address', DENIAL_CODES.pinAddress, `${op} speaks for worker ${clip(m.worker)}, which is neither the peer's source address nor a SAN of its certificate`);
    }
    return null;
  }

  #openStream(op: string, m: OpMap): Refusal | null {
    if (this.#mode !== Mode.Rpc) return this.#close(this.#policyDenial(op, 'pin-stream', DENIAL_CODES.pinStream, 'the connection is already a stream'));
    if (op === STREAM_OPENERS.client) {
      if (typeof m.client !== 'string') return this.#close(this.#policyDenial(op, 'pin-stream', DENIAL_CODES.pinStream, 'register-client without a client id'));
      this.#boundClient = m.client;
      this.#mode = Mode.ClientStream;
    } else if (op === STREAM_OPENERS.worker) {
      const certName = this.#peer.identity.name;
      if (this.#policy.settings.pinWorkerName && m.name !== certName) {
        return this.#close(this.#policyDenial(op, 'pin-worker-name', DENIAL_CODES.pinName, `worker name ${clip(m.name)} is not the certificate name ${clip(certName)}`));
      }
      this.#boundWorker = m.address as string; // checked by the address pin above
      this.#workers.add(this.#boundWorker, this.#ownerName());
      this.#mode = Mode.WorkerStream;
    } else {
      this.#mode = Mode.UnboundStream;
    }
    return null;
  }

  /** A stream's identity is the one it registered; stream ops only on their own kind of stream. */
  #streamProblem(op: string, m: OpMap): string | null {
    switch (this.#mode) {
      case Mode.ClientStream:
        if (WORKER_STREAM_OPS.has(op)) return `${op} is a worker stream op, sent on a client stream`;
        if (m.client !== undefined && m.client !== this.#boundClient && !(op === 'client-desires-keys' && m.client === FIRE_AND_FORGET)) {
          return `message names client ${clip(m.client)}, the stream registered ${clip(this.#boundClient)}`;
        }
        if (m.worker !== undefined) return `message names worker ${clip(m.worker)} on a client stream`;
        return null;
      case Mode.WorkerStream:
        if (CLIENT_STREAM_OPS.has(op)) return `${op} is a client stream op, sent on a worker stream`;
        if (m.worker !== undefined && m.worker !== this.#boundWorker) return `message names worker ${clip(m.worker)}, the stream registered ${clip(this.#boundWorker)}`;
        if (m.client !== undefined) return `message names client ${clip(m.client)} on a worker stream`;
        return null;
      case Mode.UnboundStream:
        return null; // connection_stream (admin): no identity to pin
      default:
        if (WORKER_STREAM_OPS.has(op) || CLIENT_STREAM_OPS.has(op)) return `${op} is a stream op, sent before register-client/register-worker`;
        return null;
    }
  }

  #ownerName(): string {
    const id = this.#peer.identity;
    return `${id.role}/${id.name ?? ''}`;
  }

  /**
   * A policy refusal: on a request connection the request is dropped and
   * answered (if its caller waits for an answer); on a stream it closes.
   */
  #refuse(op: string, m: OpMap, denial: Denial): Refusal {
    if (this.#mode !== Mode.Rpc) return { denial, polite: false };
    const id = this.#peer.identity;
    const text = `scheduler-gateway refused ${JSON.stringify(clip(op, 64))} for ${id.role}${id.name ? ` ${id.name}` : ''}: ${denial.detail ?? denial.reason} (${denial.code}, rule ${denial.rule ?? denial.reason})`;
    if (op === STREAM_OPENERS.client) this.#answer = streamStartRefusal(text);
    else if (op === STREAM_OPENERS.worker) this.#answer = registerWorkerRefusal(text, (this.#deps.now ?? (() => Date.now() / 1000))());
    else if (op === 'feed') this.#answer = feedRefusal(text);
    else if (m.reply) this.#answer = errorReply(text);
    return { denial, polite: true };
  }

  #close(denial: Denial): Refusal {
    return { denial, polite: false };
  }

  #policyDenial(op: string, rule: string, code: string, detail: string): Denial {
    const known = KNOWN_OPS.has(op);
    return { code, reason: SHORT_REASON[code] ?? 'policy', op: known ? op : '(unknown)', rule, detail: known ? detail : `op ${JSON.stringify(clip(op, 64))}: ${detail}` };
  }

  #wireDenial(e: GatewayError): Denial {
    this.#deps.metrics.wireErrorsTotal.inc({ code: e.code });
    return { code: e.code, reason: 'wire', rule: e.code, detail: e.message };
  }

  #auditOnce(op: string, rule: string): void {
    this.#audited ??= new Set();
    if (this.#audited.has(op) || this.#audited.size >= 32) return;
    this.#audited.add(op);
    this.#deps.log.audit('policy_unknown_op_allowed', { connection: this.#peer.connectionId, serial: this.#peer.serial, role: this.#peer.identity.role, name: this.#peer.identity.name, op: clip(op, 64), rule });
  }
}

export function clip(s: string | null | undefined, max = 128): string {
  if (s === null || s === undefined) return String(s);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}
