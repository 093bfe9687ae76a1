/** Keys of wire-aware authorization on 8786 (src/policy, src/wire; docs/policy.md). */
import { key, parse, type SliceOf } from '../spec.js';

export const policyKeys = {
  file: key({ key: 'policy.file', flag: 'policy', placeholder: 'FILE', describe: "YAML or JSON policy file (see 'policy show'); omitted: the built-in default policy; reloaded when the file changes", path: 'file', parse: parse.string }),
  inspect: key({ key: 'policy.inspect', flag: 'inspect', placeholder: 'BOOL', boolean: true, describe: 'parse Dask messages on 8786 and enforce the policy; false: pure byte forwarding, no policy', default: true, parse: parse.bool }),
  maxFrames: key({ key: 'policy.max-frames', flag: 'max-frames', placeholder: 'N', describe: 'most frames one Dask message may declare', default: 1_000_000, parse: parse.int(1, 100_000_000) }),
  maxFrame0Bytes: key({ key: 'policy.max-frame0-bytes', flag: 'max-frame0-bytes', placeholder: 'BYTES', describe: 'largest msgpack header (frame 0) buffered per connection; large task graphs need more', default: 64 * 1024 * 1024, parse: parse.int(1024, 2 ** 31 - 1) }),
  maxMessageBytes: key({ key: 'policy.max-message-bytes', flag: 'max-message-bytes', placeholder: 'BYTES', describe: 'largest Dask message, payload frames included (never buffered, only counted)', default: 16 * 2 ** 30, parse: parse.int(1024, Number.MAX_SAFE_INTEGER) }),
  workerClientOps: key({ key: 'policy.worker-client-ops', flag: 'worker-client-ops', placeholder: 'BOOL', boolean: true, describe: 'worker certificates may also send client operations (tasks calling get_client(), Lock, Queue...)', default: true, parse: parse.bool }),
  unknownOps: key({ key: 'policy.unknown-ops', flag: 'unknown-ops', placeholder: 'deny|allow|audit', describe: 'operations the gateway does not know, for roles without "*": refuse, forward, or forward with an audit line', default: 'deny', parse: parse.oneOf(['deny', 'allow', 'audit'] as const) }),
  pinWorkerName: key({ key: 'policy.pin-worker-name', flag: 'pin-worker-name', placeholder: 'BOOL', boolean: true, describe: "register-worker's name must equal the worker certificate's name (dask worker --name)", default: false, parse: parse.bool }),
};

export type PolicyConfig = SliceOf<typeof policyKeys>;
