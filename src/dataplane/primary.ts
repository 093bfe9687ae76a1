/**
 * The primary's side of the multi-process data plane (--processes N): forks
 * N data-plane processes with Node's cluster module, which share the 8786
 * listening socket and accept on it themselves (SCHED_NONE: no hop through
 * the primary per connection), and keeps them in step with the primary,
 * which still owns the PKI state, the policy file, the dashboard, telemetry
 * and the supervisor:
 *   admission   every slot decision is the broker's (broker.ts)
 *   trust       each new version of the TLS material and each revocation is
 *               sent to every process, which closes its own sessions
 *   policy      each policy the primary validated, by text
 *   workers     registrations a process saw (policy/worker-directory.ts)
 *   logs        relayed (log-relay.ts) and written by the primary
 *   metrics     read on demand, summed by the Prometheus endpoint
 * A process that dies is replaced (with backoff) and its slots freed; a new
 * one starts from the primary's current state.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { MetricsJson } from '../runtime/metrics-aggregate.js';
import type { Component, GatewayContext, TrustMaterial } from '../runtime/context.js';
import { Channel, type IpcPort } from './channel.js';
import { AdmissionBroker, type BrokerOptions } from './broker.js';
import { writeRelayed } from './log-relay.js';
import { OP, toWireTrust, type Listening, type PolicyText, type TrustApplied, type WorkerInit } from './protocol.js';
import type { PolicyHolder } from '../policy/holder.js';
import type { PolicyConfig } from '../config/keys/policy.js';
import { WorkerDirectory } from '../policy/worker-directory.js';
import { GatewayError } from '../errors/base.js';

export interface DataPlaneOptions {
  readonly processes: number;
  readonly terminator: WorkerInit['terminator'];
  readonly logLevel: WorkerInit['logLevel'];
  readonly memoryBudgetBytes: number;
  readonly policy: { readonly config: PolicyConfig; readonly holder: PolicyHolder } | undefined;
  readonly broker: Omit<BrokerOptions, 'metrics'>;
  /** How long a process may take to start listening. */
  readonly startTimeoutMs?: number;
}

export interface DataPlane extends Component {
  readonly address: AddressInfo;
  /** Sends a trust change to every process; resolves with what each closed. */
  applyTrust(m: TrustMaterial, newlyRevoked: string[], removedCas: string[]): Promise<TrustApplied[]>;
  publishPolicy(holder: PolicyHolder): void;
  /** The registry of every process that answers within the deadline. */
  processMetrics(timeoutMs: number): Promise<MetricsJson[]>;
}

const START_MS = 30_000;
const RESTART_FIRST_MS = 250;
const RESTART_MAX_MS = 10_000;
/** A process up this long has recovered: its next death restarts at the first delay. */
const STABLE_MS = 60_000;

/** The entry point next to this file, .ts under the test loader, .js when built. */
const WORKER_MAIN = fileURLToPath(import.meta.url).replace(/primary\.([cm]?[jt]s)$/, 'worker-main.$1');

interface Member {
  readonly index: number;
  worker: Worker | undefined;
  ch: Channel | undefined;
  startedAt: number;
  failures: number;
  /** Its `init` is sent: it hears of every later change; what came before is in its init. */
  initialized: boolean;
}

export async function startDataPlane(ctx: GatewayContext, o: DataPlaneOptions): Promise<DataPlane> {
  if (!cluster.isPrimary) throw new GatewayError('GW_USAGE', '--processes: a data-plane process cannot start data-plane processes of its own');
  const plane = new ProcessGroup(ctx, o);
  await plane.start();
  return plane;
}

class ProcessGroup implements DataPlane {
  readonly name = 'terminator';
  readonly #ctx: GatewayContext;
  readonly #o: DataPlaneOptions;
  readonly #broker: AdmissionBroker;
  readonly #members: Member[];
  readonly #directory = new WorkerDirectory();
  #address: AddressInfo | undefined;
  #stopping = false;
  #closed: Promise<void> | undefined;

  constructor(ctx: GatewayContext, o: DataPlaneOptions) {
    this.#ctx = ctx;
    this.#o = o;
    this.#broker = new AdmissionBroker({ ...o.broker, metrics: ctx.metrics });
    this.#members = Array.from({ length: o.processes }, (_, i) => ({ index: i + 1, worker: undefined, ch: undefined, startedAt: 0, failures: 0, initialized: false }));
  }

  get address(): AddressInfo {
    return this.#address!;
  }

  async start(): Promise<void> {
    // Before the first fork: the processes accept on the shared socket themselves.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: WORKER_MAIN, args: [], silent: false });
    try {
      await Promise.all(this.#members.map((m) => this.#spawn(m)));
    } catch (e) {
      await this.close();
      throw e;
    }
    this.#ctx.log.info('dataplane_started', { processes: this.#members.length, pids: this.#members.map((m) => m.worker?.process.pid) });
  }

  async #spawn(m: Member): Promise<void> {
    const worker = cluster.fork();
    const ch = new Channel(worker as unknown as IpcPort);
    m.worker = worker;
    m.ch = ch;
    m.startedAt = Date.now();
    m.initialized = false;
    ch.handle(OP.log, (text) => writeRelayed(this.#ctx.log, text));
    ch.handle(OP.workerRegistered, (b) => this.#relayRegistration(m, b));
    worker.once('exit', (code, signal) => this.#exited(m, worker, code, signal));
    await this.#ready(ch, worker);
    // Not before: the broker asks every attached process for reclaim candidates, and one still loading would never answer.
    this.#broker.attach(m.index, ch);
    const init = ch.request<Listening>(OP.init, this.#initFor(m), this.#startMs);
    m.initialized = true;
    const listening = await init;
    this.#address ??= listening.address as AddressInfo;
  }

  get #startMs(): number {
    return this.#o.startTimeoutMs ?? START_MS;
  }

  /** Its modules are loaded and it listens on the pipe (or it died first). */
  #ready(ch: Channel, worker: Worker): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new GatewayError('GW_USAGE', `a data-plane process did not start within ${this.#startMs} ms`)), this.#startMs);
      const died = (code: number | null) => {
        clearTimeout(timer);
        reject(new GatewayError('GW_USAGE', `a data-plane process exited (code ${code}) before it was ready`));
      };
      worker.once('exit', died);
      ch.handle(OP.ready, () => {
        clearTimeout(timer);
        worker.off('exit', died);
        resolve();
      });
    });
  }

  #initFor(m: Member): WorkerInit {
    const policy = this.#o.policy;
    return {
      index: m.index,
      logLevel: this.#o.logLevel,
      allowMissingEku: this.#ctx.allowMissingEku,
      trust: toWireTrust(this.#ctx.trust.current()),
      terminator: this.#o.terminator,
      memoryBudgetBytes: this.#o.memoryBudgetBytes,
      policy: policy ? { config: policy.config, current: policyText(policy.holder) } : undefined,
      workers: this.#directory.entries(),
    };
  }

  #exited(m: Member, worker: Worker, code: number | null, signal: string | null): void {
    if (m.worker !== worker) return;
    m.ch?.close();
    this.#broker.detach(m.index);
    m.worker = undefined;
    m.ch = undefined;
    if (this.#stopping) return;
    if (Date.now() - m.startedAt >= STABLE_MS) m.failures = 0;
    const delay = Math.min(RESTART_MAX_MS, RESTART_FIRST_MS * 2 ** m.failures++);
    this.#ctx.metrics.dataplaneRestartsTotal.inc();
    this.#ctx.log.error('dataplane_process_exited', { dataplane: m.index, pid: worker.process.pid, code, signal, restart_in_ms: delay });
    setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn(m).then(
        () => this.#ctx.log.info('dataplane_process_restarted', { dataplane: m.index, pid: m.worker?.process.pid }),
        (e: unknown) => {
          this.#ctx.log.error('dataplane_process_start_failed', { dataplane: m.index, error: (e as Error).message });
          m.worker?.kill('SIGKILL');
        },
      );
    }, delay).unref();
  }

  #relayRegistration(from: Member, body: unknown): void {
    const { address, owner } = (body ?? {}) as { address?: unknown; owner?: unknown };
    if (typeof address !== 'string' || typeof owner !== 'string') return;
    this.#directory.addRelayed(address, owner);
    for (const m of this.#members) if (m !== from) m.ch?.notify(OP.workerRegistered, { address, owner });
  }

  /**
   * The processes a change must reach. One still starting would drop it unanswered (it has no
   * handlers before `init`) and be killed for that; its init carries the change instead.
   */
  #live(): Member[] {
    return this.#members.filter((m) => m.ch !== undefined && m.initialized);
  }

  async applyTrust(material: TrustMaterial, newlyRevoked: string[], removedCas: string[]): Promise<TrustApplied[]> {
    const update = { material: toWireTrust(material), newlyRevoked, removedCas };
    const answers = await Promise.all(this.#live().map((m) => m.ch!.request<TrustApplied>(OP.trust, update).catch((e: unknown) => {
      // A process that cannot take the change must not keep serving with the old trust.
      this.#ctx.log.error('dataplane_trust_failed', { dataplane: m.index, error: (e as Error).message, action: 'restarting it' });
      m.worker?.kill('SIGKILL');
      return undefined;
    })));
    return answers.filter((a): a is TrustApplied => a !== undefined);
  }

  publishPolicy(holder: PolicyHolder): void {
    const text = policyText(holder);
    for (const m of this.#live()) m.ch!.notify(OP.policy, text);
  }

  async processMetrics(timeoutMs: number): Promise<MetricsJson[]> {
    const all = await Promise.all(this.#live().map((m) => m.ch!.request<MetricsJson>(OP.metrics, null, timeoutMs).catch(() => undefined)));
    return all.filter((x): x is MetricsJson => x !== undefined);
  }

  async drain(deadlineMs: number): Promise<void> {
    this.#stopping = true;
    await Promise.allSettled(this.#live().map((m) => m.ch!.request(OP.drain, { deadlineMs }, deadlineMs + 5_000)));
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#stopping = true;
      await Promise.allSettled(this.#members.map((m) => this.#stop(m)));
      this.#ctx.log.info('dataplane_stopped', {});
    })();
    return this.#closed;
  }

  /** Asks the process to close its connections and exit; kills it if it has not within a few seconds. */
  async #stop(m: Member): Promise<void> {
    const w = m.worker;
    if (!w) return;
    const exited = new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve())));
    // One still loading holds no connection and would drop the request unanswered: it is stopped at once.
    if (m.initialized) await m.ch?.request(OP.close, null, 5_000).catch(() => undefined);
    else w.kill('SIGTERM');
    const timer = setTimeout(() => w.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

function policyText(holder: PolicyHolder): PolicyText {
  return { text: holder.text, source: holder.current().source };
}
