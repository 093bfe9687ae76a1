/**
 * Every error the PKI layer throws, declared once. Each message names the
 * problem and, where there is one, the file or value at fault, so a failing
 * command prints one useful line (exit code 2).
 */
import { defineErrors } from '../errors/base.js';

export const pkiError = defineErrors({
  /** A key file could not be decrypted with the passphrase given. */
  wrongPassphrase: { code: 'GW_PKI_WRONG_PASSPHRASE', message: 'wrong passphrase for {file}' },
  /** No passphrase from --passphrase-file, SCHEDULER_GATEWAY_PASSPHRASE_FILE, SCHEDULER_GATEWAY_PASSPHRASE or a development directory. */
  noPassphrase: { code: 'GW_PKI_NO_PASSPHRASE', message: 'no passphrase: set SCHEDULER_GATEWAY_PASSPHRASE or SCHEDULER_GATEWAY_PASSPHRASE_FILE, or pass --passphrase-file' },
  /** A new passphrase too short to protect keys at rest (init, certs passphrase). */
  weakPassphrase: { code: 'GW_PKI_WEAK_PASSPHRASE', message: 'passphrase too short: use at least {min} characters' },
  /** A key or passphrase file that group or other users can read. */
  keyFileTooOpen: { code: 'GW_PKI_KEY_FILE_TOO_OPEN', message: '{file} is readable by other users (mode {mode}); run chmod 600 {file}' },
  /** A file that should hold PEM data but does not parse. */
  corruptPem: { code: 'GW_PKI_CORRUPT_PEM', message: '{file} is not a valid {what} PEM file' },
  /** A JSON state file that does not parse or has the wrong shape. */
  corruptState: { code: 'GW_PKI_CORRUPT_STATE', message: '{file} is corrupt: {reason}' },
  /** A file that cannot be read. */
  unreadable: { code: 'GW_PKI_UNREADABLE', message: 'cannot read {file}: {reason}' },
  /** The --dir directory does not exist. */
  missingDir: { code: 'GW_PKI_MISSING_DIR', message: 'state directory {dir} does not exist (run certs init first)' },
  /** The directory exists but holds no state.json. */
  notInitialized: { code: 'GW_PKI_NOT_INITIALIZED', message: 'state directory {dir} is not initialized (run certs init)' },
  /** certs init on a directory that already has a CA. */
  alreadyInitialized: { code: 'GW_PKI_ALREADY_INITIALIZED', message: 'state directory {dir} is already initialized for cluster {cluster}' },
  /** The state directory is not a directory or is writable by others. */
  badDir: { code: 'GW_PKI_BAD_DIR', message: '{dir}: {reason}' },
  unknownRole: { code: 'GW_PKI_UNKNOWN_ROLE', message: "unknown role '{role}': use one of {allowed}" },
  invalidClusterId: { code: 'GW_PKI_INVALID_CLUSTER_ID', message: "invalid cluster id '{cluster}': 1-63 characters of a-z, 0-9, '-', '.', '_'" },
  invalidName: { code: 'GW_PKI_INVALID_NAME', message: "invalid name '{name}': 1-63 characters of A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or digit" },
  invalidHost: { code: 'GW_PKI_INVALID_HOST', message: "invalid --host '{host}': give a DNS name or an IP address" },
  invalidDays: { code: 'GW_PKI_INVALID_DAYS', message: 'invalid --days {days}: {reason}' },
  invalidKeyType: { code: 'GW_PKI_INVALID_KEY_TYPE', message: "invalid key type '{keyType}': use ec-p256 or rsa-3072" },
  invalidReason: { code: 'GW_PKI_INVALID_REASON', message: "invalid revocation reason '{reason}': use one of {allowed}" },
  invalidSerial: { code: 'GW_PKI_INVALID_SERIAL', message: "invalid serial '{serial}': give hexadecimal digits" },
  duplicateName: { code: 'GW_PKI_DUPLICATE_NAME', message: "name '{name}' already has a valid certificate (serial {serial}); revoke it first" },
  unknownSerial: { code: 'GW_PKI_UNKNOWN_SERIAL', message: 'no certificate with serial {serial} in {dir}' },
  unknownName: { code: 'GW_PKI_UNKNOWN_NAME', message: "no valid certificate named '{name}' in {dir}" },
  alreadyRevoked: { code: 'GW_PKI_ALREADY_REVOKED', message: 'certificate {serial} is already revoked' },
  lockTimeout: { code: 'GW_PKI_LOCK_TIMEOUT', message: 'timed out after {ms} ms waiting for {file} (held by pid {pid})' },
  keyMismatch: { code: 'GW_PKI_KEY_MISMATCH', message: '{keyFile} does not match the certificate in {certFile}' },
  certificateInvalid: { code: 'GW_PKI_CERTIFICATE_INVALID', message: '{file}: {reason}' },
  outputDir: { code: 'GW_PKI_OUTPUT_DIR', message: 'cannot write bundle to {dir}: {reason}' },
  /** Another command changed the state directory between this command's read and its write. */
  concurrentChange: { code: 'GW_PKI_CONCURRENT_CHANGE', message: '{dir} changed while this command ran (another certs command?); run it again' },
  /** rotate-ca switch or finish with no rotation begun. */
  noRotation: { code: 'GW_PKI_NO_ROTATION', message: 'no CA rotation in progress in {dir} (start one with certs rotate-ca begin)' },
  /** A rotate-ca step out of order (begin during a rotation, finish before switch). */
  rotationPhase: { code: 'GW_PKI_ROTATION_PHASE', message: 'the CA rotation in {dir} is at {phase}: {next}' },
  /** rotate-ca finish while certificates of the outgoing CA are still current. */
  rotationPending: { code: 'GW_PKI_ROTATION_PENDING', message: '{count} certificate(s) from the outgoing CA still need renewing before finish: {names} (certs list shows them; --force cuts them off)' },
  usage: { code: 'GW_USAGE', message: '{message}' },
});
