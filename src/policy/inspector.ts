/**
 * Per-connection wire-aware authorization for the 8786 terminator: implements
 * terminator/inspector.ts's StreamInspector on top of the frame parser
 * (wire/frame-parser.ts), the frame-0 scanner (wire/ops.ts) and the pure
 * decide() (decide.ts), and adds what needs connection state:
 *   - the first message from the peer must be the handshake map (§2.1);
 *   - after register-client / register-worker the connection is a stream bound
 *     to the declared client id / worker address; later messages naming
 *     another one are refused (§2.4);
 *   - worker address and name pinning (§4.2; pinning.ts);
 *   - the broadcast guard: for non-admins, `broadcast` only as Client.run
 *     sends it (inner op run/run_coroutine, no nannies, targets among the
 *     workers registered through this gateway; worker-directory.ts).
 * The terminator closes the connection on a denial, writes the audit line and
 * counts policy_denials_total{role, op, rule}; so that label set stays small,
 * Denial.op is a catalog op or "(unknown)" (the raw op goes into detail) and a
 * framing violation's rule is its GW_WIRE_* code. wire_errors_total is counted
 * here.
 * The scheduler's direction is trusted and passed through unparsed.
 */
import { GatewayError } from '../errors/base.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import type { Denial, InspectorFactory, PeerInfo, StreamInspector } from '../terminator/inspector.js';
import { FrameParser, type Frame0Sink, type FrameLimits } from '../wire/frame-parser.js';
import { Frame0Scanner, DEFAULT_SCAN_LIMITS, type OpMap, type OpVisitor, type ScanLimits, type TopShape } from '../wire/ops.js';
import { wireError } from '../wire/errors.js';
import { ADDRESS_PINNED_OPS, ADDRESS_REQUIRED_OPS, CLIENT_STREAM_OPS, KNOWN_OPS, STREAM_OPENERS, WORKER_FIELD_PINNED_OPS, WORKER_STREAM_OPS } from './catalog.js';
import { decide } from './decide.js';
import { DENIAL_CODES } from './errors.js';
import { allowedHosts, hostOfAddress, normalizeHost } from './pinning.js';
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
}

export function createInspectorFactory(policy: PolicySource, deps: InspectorDeps): InspectorFactory {
  const workers = new WorkerDirectory();
  return (peer) => new ConnectionInspector(peer, policy, deps, workers);
}

/** What Client.run puts in broadcast's msg (worker.py handlers "run", "run_coroutine"). */
const RUN_OPS: ReadonlySet<string> = new Set(['run', 'run_coroutine']);

const enum Mode {
  Handshake,
  Rpc,
  ClientStream,
  WorkerStream,
  UnboundStream,
}

const SHORT_REASON: Record<string, string> = {
  [DENIAL_CODES.denied]: 'op-denied',
  [DENIAL_CODES.unknownOp]: 'unknown-op',
  [DENIAL_CODES.pickled]: 'pickled',
  [DENIAL_CODES.role]: 'role',
  [DENIAL_CODES.pinAddress]: 'pin-address',
  [DENIAL_CODES.pinName]: 'pin-name',
  [DENIAL_CODES.pinStream]: 'pin-stream',
  [DENIAL_CODES.broadcast]: 'broadcast-guard',
};

export class ConnectionInspector implements StreamInspector, Frame0Sink<Denial>, OpVisitor<Denial> {
  readonly #peer: PeerInfo;
  readonly #policySource: PolicySource;
  readonly #deps: InspectorDeps;
  readonly #parser: FrameParser<Denial>;
  readonly #scanner: Frame0Scanner;
  readonly #hosts: ReadonlySet<string>;
  readonly #workers: WorkerDirectory;
  #mode = Mode.Handshake;
  #policy: CompiledPolicy;
  #boundClient: string | null = null;
  #boundWorker: string | null = null;
  #audited: Set<string> | null = null;
  #denial: Denial | null = null;

  constructor(peer: PeerInfo, policy: PolicySource, deps: InspectorDeps, workers = new WorkerDirectory()) {
    this.#workers = workers;
    this.#peer = peer;
    this.#policySource = policy;
    this.#policy = policy.current();
    this.#deps = deps;
    this.#parser = new FrameParser<Denial>(deps.limits, this);
    this.#scanner = new Frame0Scanner(deps.scan ?? DEFAULT_SCAN_LIMITS);
    this.#hosts = allowedHosts(peer.remoteAddress, peer.sanHosts);
  }

  fromPeer(chunk: Buffer): Denial | null {
    if (this.#denial !== null) return this.#denial;
    const r = this.#parser.push(chunk);
    if (r === null) return null;
    this.#denial = r instanceof GatewayError ? this.#wireDenial(r) : r;
    return this.#denial;
  }

  fromScheduler(_chunk: Buffer): Denial | null {
    return null;
  }

  get bufferedBytes(): number {
    return this.#parser.bufferedBytes;
  }

  /** Frame0Sink: one complete frame 0 from the peer. */
  frame0(buf: Buffer, start: number, end: number): Denial | null {
    this.#policy = this.#policySource.current(); // a reload applies from the next message on
    const r = this.#scanner.scan(buf, start, end, this);
    if (r === null) return null;
    return r instanceof GatewayError ? this.#wireDenial(r) : r;
  }

  begin(shape: TopShape): Denial | null {
    switch (this.#mode) {
      case Mode.Handshake:
        return shape === 'map' ? null : this.#wireDenial(wireError('badHandshake', { why: `got a ${shape}` }));
      case Mode.Rpc:
        // §2.3: a request must be a map with "op"; the scheduler closes on anything else.
        return shape === 'map' ? null : this.#wireDenial(wireError('notAnOp', { why: `a ${shape} on a request connection` }));
      default:
        return null; // §2.4: streams carry lists of op-maps, a single map, or a bare "OK".
    }
  }

  nonMap(_index: number, pickled: boolean): Denial | null {
    if (!pickled) return null; // ignored by the scheduler's stream loop
    return this.#policyDenial('(none)', 'rules.pickled', DENIAL_CODES.pickled, 'a __Pickled__ placeholder outside any op');
  }

  map(m: OpMap): Denial | null {
    if (this.#mode === Mode.Handshake) {
      if (m.op !== undefined) return this.#wireDenial(wireError('badHandshake', { why: 'it carries an op' }));
      if (m.pickled) return this.#wireDenial(wireError('badHandshake', { why: 'it carries a __Pickled__ placeholder' }));
      this.#mode = Mode.Rpc;
      return null;
    }
    if (m.op === undefined) return this.#wireDenial(wireError('notAnOp', { why: 'a map without "op"' }));
    if (m.op === null) return this.#wireDenial(wireError('notAnOp', { why: '"op" is not a short string' }));
    const op = m.op;
    const role = this.#peer.identity.role;
    const d = decide(this.#policy, role, op, m);
    if (d.effect === 'deny') return this.#policyDenial(op, d.rule, d.code, d.reason);
    if (d.audit) this.#auditOnce(op, d.rule);
    return this.#pin(op, m);
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
    if (op === 'broadcast' && this.#peer.identity.role !== 'admin') {
      const problem = this.#broadcastProblem(m);
      if (problem !== null) return this.#policyDenial(op, 'broadcast-guard', DENIAL_CODES.broadcast, problem);
    }
    const problem = this.#streamProblem(op, m);
    if (problem !== null) return this.#policyDenial(op, 'pin-stream', DENIAL_CODES.pinStream, problem);
    if (op === STREAM_OPENERS.client || op === STREAM_OPENERS.worker || op === 'connection_stream') return this.#openStream(op, m);
    return null;
  }

  #openStream(op: string, m: OpMap): Denial | null {
    if (this.#mode !== Mode.Rpc) return this.#policyDenial(op, 'pin-stream', DENIAL_CODES.pinStream, 'the connection is already a stream');
    if (op === STREAM_OPENERS.client) {
      if (typeof m.client !== 'string') return this.#policyDenial(op, 'pin-stream', DENIAL_CODES.pinStream, 'register-client without a client id');
      this.#boundClient = m.client;
      this.#mode = Mode.ClientStream;
    } else if (op === STREAM_OPENERS.worker) {
      const settings = this.#policy.settings;
      const certName = this.#peer.identity.name;
      if (settings.pinWorkerName && m.name !== certName) {
        return this.#policyDenial(op, 'pin-worker-name', DENIAL_CODES.pinName, `worker name ${clip(m.name)} is not the certificate name ${clip(certName)}`);
      }
      this.#boundWorker = m.address as string; // checked by the address pin above
      this.#workers.add(this.#boundWorker, this.#ownerName());
      this.#mode = Mode.WorkerStream;
    } else {
      this.#mode = Mode.UnboundStream;
    }
    return null;
  }

  /** §2.4: a stream's identity is the one it registered; stream ops only on their own kind of stream. */
  #streamProblem(op: string, m: OpMap): string | null {
    switch (this.#mode) {
      case Mode.ClientStream:
        if (WORKER_STREAM_OPS.has(op)) return `${op} is a worker stream op, sent on a client stream`;
        if (m.client !== undefined && m.client !== this.#boundClient) return `message names client ${clip(m.client)}, the stream registered ${clip(this.#boundClient)}`;
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

  #broadcastProblem(m: OpMap): string | null {
    if (m.nanny) return 'nanny=true runs code in nanny processes (admin only)';
    if (m.innerOp === undefined || m.innerOp === null || !RUN_OPS.has(m.innerOp)) return `forwards op ${clip(m.innerOp)} to workers; only run is allowed`;
    if (m.workers === null) return 'workers is not a list of worker addresses';
    for (const w of m.workers ?? []) if (!this.#workers.hasAddress(w)) return `targets ${clip(w)}, which is not a worker registered through this gateway`;
    if (m.hosts === null) return 'hosts is not a list of hosts';
    for (const h of m.hosts ?? []) if (!this.#workers.hasHost(normalizeHost(h))) return `targets host ${clip(h)}, which runs no worker registered through this gateway`;
    return null;
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
    this.#deps.log.audit('policy.unknown_op_allowed', { connection: this.#peer.connectionId, serial: this.#peer.serial, role: this.#peer.identity.role, name: this.#peer.identity.name, op: clip(op, 64), rule });
  }
}

function clip(s: string | null | undefined, max = 128): string {
  if (s === null || s === undefined) return String(s);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}
