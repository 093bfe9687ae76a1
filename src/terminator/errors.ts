/** Error codes of the 8786 terminator (GW_TERM_*): declared once, never renamed. */
import { defineErrors } from '../errors/base.js';

export const terminatorError = defineErrors({
  listen: { code: 'GW_TERM_LISTEN_FAILED', message: 'cannot listen on {address}: {cause}' },
  upstreamUnavailable: { code: 'GW_TERM_UPSTREAM_UNAVAILABLE', message: 'scheduler unreachable ({kind}): {cause}' },
});
