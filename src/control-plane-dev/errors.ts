/**
 * The errors of the development receiver. Its code keeps the GW_TELEMETRY_
 * prefix it was published under: codes are never renamed.
 */
import { defineErrors } from '../errors/base.js';

export const receiverError = defineErrors({
  /** The reference receiver's database or arguments are unusable. */
  unusable: { code: 'GW_TELEMETRY_RECEIVER', message: 'control-plane-dev: {reason}' },
});
