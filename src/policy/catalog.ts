/**
 * Every scheduler operation the gateway knows, by group (the scheduler's
 * handlers in 2022.12.1 and in the newest distributed). An op may sit in
 * several groups. Policy files name ops and groups from here; any other name
 * is a validation error, and an op seen on the wire that is not here is
 * "unknown" (see rules.ts).
 */

/** Ends a connection or a stream; harmless for everyone. */
const CONTROL = ['close', 'close-stream'] as const;

/** What a data scientist's Client sends. */
const CLIENT = [
  // registration and queries
  'register-client', 'identity', 'versions', 'ncores', 'ncores_running', 'has_what', 'who_has', 'processing', 'nbytes',
  'get_task_status', 'get_task_prefix_states', 'get_metadata', 'echo', 'log_event',
  // data and task control
  'scatter', 'gather', 'cancel', 'retry', 'update_data', 'set_metadata', 'set_restrictions',
  // cluster operations a Client exposes (restart and plugins run code in worker and nanny processes,
  // which a client certificate may do anyway through its tasks)
  'rebalance', 'replicate', 'retire_workers', 'adaptive_target', 'workers_to_close', 'subscribe_worker_status',
  'restart', 'restart_workers', 'benchmark_hardware', 'get_cluster_state',
  'register_worker_plugin', 'unregister_worker_plugin', 'register_nanny_plugin', 'unregister_nanny_plugin',
  // diagnostics
  'get_task_stream', 'get_task_stream_index', 'profile', 'call_stack', 'get_logs', 'logs', 'worker_logs', 'events',
  'performance_report', 'start_task_metadata', 'stop_task_metadata', 'get_story', 'get_runspec', 'get_error_cause',
  'memory_sampler_start', 'memory_sampler_stop', 'amm_handler', 'check_idle',
  // coordination extensions (Lock, MultiLock, Semaphore, Event, Variable, Queue, publish, PubSub)
  'lock_acquire', 'lock_release', 'multi_lock_acquire', 'multi_lock_release',
  'semaphore_acquire', 'semaphore_close', 'semaphore_refresh_leases', 'semaphore_register', 'semaphore_release', 'semaphore_value',
  'event_clear', 'event_is_set', 'event_set', 'event_wait', 'variable_get', 'variable_set',
  'queue_create', 'queue_get', 'queue_put', 'queue_qsize',
  'publish_delete', 'publish_get', 'publish_list', 'publish_put', 'pubsub_add_publisher',
  // stream ops on a register-client stream
  'update-graph', 'update-graph-hlg', 'client-desires-keys', 'client-releases-keys', 'update-data', 'report-key',
  'heartbeat-client', 'close-client', 'subscribe-topic', 'unsubscribe-topic', 'cancel-keys',
  'variable-future-release', 'variable-future-received-confirm', 'variable_delete', 'queue-future-release', 'queue_release',
  'publish_flush_batched_send',
  'pubsub-add-subscriber', 'pubsub-msg', 'pubsub-remove-publisher', 'pubsub-remove-subscriber',
] as const;

/**
 * Client ops that make the scheduler run code the caller supplies: `feed`,
 * what progress bars (distributed.progress, progress_stream) open, unpickles
 * and runs three functions on the scheduler. Not granted by default; a
 * policy that wants progress bars for clients allows "@client-code".
 */
const CLIENT_CODE = ['feed'] as const;

/**
 * Ops that make the scheduler dial workers and forward a message:
 * `broadcast` (Client.run, Client.get_versions) and `proxy` (Actors). The
 * scheduler dials whatever addresses it is given, so for every role but
 * admin they pass only through the guard in forward-guard.ts.
 */
const CLIENT_RUN = ['broadcast', 'proxy'] as const;

/** Nanny and worker ops, including the worker batched stream. */
const WORKER = [
  'register-worker', 'register_nanny', 'heartbeat_worker', 'unregister', 'add_keys', 'set_resources',
  'retire_workers', 'log_event', 'identity',
  'shuffle_get', 'shuffle_get_participating_workers', 'shuffle_register_complete',
  'shuffle_barrier', 'shuffle_get_or_create', 'shuffle_restrict_task',
  'task-finished', 'task-erred', 'release-worker-data', 'add-keys', 'long-running', 'reschedule', 'keep-alive',
  'log-event', 'worker-status-change', 'request-refresh-who-has', 'steal-response',
  // PubSub inside tasks runs on the worker's own stream in 2022.12.1.
  'pubsub-add-subscriber', 'pubsub-msg', 'pubsub-remove-publisher', 'pubsub-remove-subscriber',
] as const;

/**
 * Code in the scheduler process (run_function, scheduler plugins;
 * feed is in @client-code), the scheduler writing to a URL of the caller's
 * choice, shutting the cluster down (its lifecycle is the platform's), raw
 * internal state, and unbound streams.
 */
const ADMIN = [
  'run_function', 'register_scheduler_plugin', 'unregister_scheduler_plugin',
  'terminate', 'dump_cluster_state_to_url', 'dump_state', 'connection_stream',
] as const;

export const OP_GROUPS = {
  control: CONTROL,
  client: CLIENT,
  'client-code': CLIENT_CODE,
  'client-run': CLIENT_RUN,
  worker: WORKER,
  admin: ADMIN,
} as const satisfies Record<string, readonly string[]>;

export type OpGroup = keyof typeof OP_GROUPS;

export const KNOWN_OPS: ReadonlySet<string> = new Set(Object.values(OP_GROUPS).flat());

/** Ops that bind a connection to a declared identity. */
export const STREAM_OPENERS = { client: 'register-client', worker: 'register-worker' } as const;

/**
 * Stream handlers take their identity from the stream (`worker=` or `client=`)
 * unless the message overrides it, and the scheduler dispatches both
 * kinds on any stream. So each kind is valid only on its own kind of stream:
 * a task-finished on a client stream would name any worker it likes.
 */
export const WORKER_STREAM_OPS: ReadonlySet<string> = new Set(['task-finished', 'task-erred', 'release-worker-data', 'add-keys', 'long-running', 'reschedule', 'keep-alive', 'log-event', 'worker-status-change', 'request-refresh-who-has', 'steal-response']);
export const CLIENT_STREAM_OPS: ReadonlySet<string> = new Set(['update-graph', 'update-graph-hlg', 'client-desires-keys', 'client-releases-keys', 'update-data', 'report-key', 'heartbeat-client', 'close-client', 'subscribe-topic', 'unsubscribe-topic', 'cancel-keys', 'variable-future-release', 'variable-future-received-confirm', 'variable_delete', 'queue-future-release', 'queue_release', 'publish_flush_batched_send']);

/**
 * Arguments the scheduler unpickles when they are bytes, in ops a non-admin
 * may otherwise send: `retire_workers` passes its extra arguments on to
 * `workers_to_close`, which runs `pickle.loads(key)` (scheduler.py, both
 * versions). No Client API sends `key`; refused for every role but admin.
 */
export const UNPICKLED_ARGUMENTS: Readonly<Record<string, { readonly argument: string; readonly why: string }>> = {
  workers_to_close: { argument: 'key', why: 'the scheduler unpickles a bytes key' },
  retire_workers: { argument: 'key', why: 'the scheduler passes key to workers_to_close, which unpickles it' },
};

/** Ops whose `address` the scheduler trusts as declared (and later dials). */
export const ADDRESS_PINNED_OPS: ReadonlySet<string> = new Set(['register-worker', 'heartbeat_worker', 'unregister', 'register_nanny']);
/** Worker rpc ops that name the worker they speak for in `worker` (add_keys, add_resources, shuffle register_complete). */
export const WORKER_FIELD_PINNED_OPS: ReadonlySet<string> = new Set(['add_keys', 'set_resources', 'shuffle_register_complete']);
/** Of the address-pinned ops, the ones Dask always sends with an address (2022.12.1 register_nanny carries none). */
export const ADDRESS_REQUIRED_OPS: ReadonlySet<string> = new Set(['register-worker', 'heartbeat_worker', 'unregister']);

export function isOpGroup(s: string): s is OpGroup {
  return Object.hasOwn(OP_GROUPS, s);
}

export function groupsOf(op: string): OpGroup[] {
  return (Object.keys(OP_GROUPS) as OpGroup[]).filter((g) => (OP_GROUPS[g] as readonly string[]).includes(op));
}
