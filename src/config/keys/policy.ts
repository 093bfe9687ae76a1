/** Keys of wire-aware authorization on 8786 (src/policy, src/wire; docs/policy.md). */
import { parse, type KeySpec } from '../spec.js';

const env = (k: string) => `SCHEDULER_GATEWAY_${k.toUpperCase().replace(/[.-]/g, '_')}`;

export const policyKeys: KeySpec[] = [
  { key: 'policy.file', flag: 'policy', env: env('policy'), placeholder: 'FILE', describe: "YAML or JSON policy file (see 'policy show'); omitted: the built-in default policy; reloaded when the file changes", parse: parse.string },
  { key: 'policy.inspect', flag: 'inspect', env: env('inspect'), placeholder: 'BOOL', boolean: true, describe: 'parse Dask messages on 8786 and enforce the policy; false: pure byte forwarding, no policy', default: true, parse: parse.bool },
  { key: 'policy.max-frames', flag: 'max-frames', env: env('max_frames'), placeholder: 'N', describe: 'most frames one Dask message may declare', default: 1_000_000, parse: parse.int(1, 100_000_000) },
  { key: 'policy.max-frame0-bytes', flag: 'max-frame0-bytes', env: env('max_frame0_bytes'), placeholder: 'BYTES', describe: 'largest msgpack header (frame 0) buffered per connection; large task graphs need more', default: 64 * 1024 * 1024, parse: parse.int(1024, 2 ** 31 - 1) },
  { key: 'policy.max-message-bytes', flag: 'max-message-bytes', env: env('max_message_bytes'), placeholder: 'BYTES', describe: 'largest Dask message, payload frames included (never buffered, only counted)', default: 16 * 2 ** 30, parse: parse.int(1024, Number.MAX_SAFE_INTEGER) },
  { key: 'policy.worker-client-ops', flag: 'worker-client-ops', env: env('worker_client_ops'), placeholder: 'BOOL', boolean: true, describe: 'worker certificates may also send client operations (tasks calling get_client(), Lock, Queue...)', default: true, parse: parse.bool },
  { key: 'policy.unknown-ops', flag: 'unknown-ops', env: env('unknown_ops'), placeholder: 'deny|allow|audit', describe: 'operations the gateway does not know, for roles without "*": refuse, forward, or forward with an audit line', default: 'deny', parse: parse.oneOf(['deny', 'allow', 'audit'] as const) },
  { key: 'policy.pin-worker-name', flag: 'pin-worker-name', env: env('pin_worker_name'), placeholder: 'BOOL', boolean: true, describe: "register-worker's name must equal the worker certificate's name (dask worker --name)", default: false, parse: parse.bool },
];
