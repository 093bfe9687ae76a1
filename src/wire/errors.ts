/**
 * Dask framing and frame-0 violations. Every code here ends a connection: the
 * byte stream cannot be resynchronised once a length is doubted.
 */
import { defineErrors } from '../errors/base.js';

export const WIRE_ERRORS = {
  tooManyFrames: { code: 'GW_WIRE_TOO_MANY_FRAMES', message: 'message declares {frames} frames, the limit is {limit}' },
  noFrames: { code: 'GW_WIRE_NO_FRAMES', message: 'message declares zero frames; frame 0 is mandatory' },
  frame0TooLarge: { code: 'GW_WIRE_FRAME0_TOO_LARGE', message: 'frame 0 is {bytes} bytes, the limit is {limit}' },
  messageTooLarge: { code: 'GW_WIRE_MESSAGE_TOO_LARGE', message: 'message is at least {bytes} bytes, the limit is {limit}' },
  lengthOverflow: { code: 'GW_WIRE_LENGTH_OVERFLOW', message: 'a declared {field} does not fit in 2^53-1' },
  lengthMismatch: { code: 'GW_WIRE_LENGTH_MISMATCH', message: 'leading length {declared} does not cover the prelude plus a leading run of frames' },
  malformedFrame0: { code: 'GW_WIRE_MALFORMED_FRAME0', message: 'frame 0 is not a single well-formed msgpack value: {why}' },
  duplicateKey: { code: 'GW_WIRE_DUPLICATE_KEY', message: 'key {key} appears twice in {at} (the scheduler would decode both values and keep only the last)' },
  nonStringKey: { code: 'GW_WIRE_NON_STRING_KEY', message: '{at} has a key that is not a string; an operation takes only string keys' },
  magicField: { code: 'GW_WIRE_MAGIC_FIELD', message: '{field} in {at} is a {magic} map, which the scheduler would decode into another value' },
  badPlaceholder: { code: 'GW_WIRE_BAD_PLACEHOLDER', message: 'a {placeholder} placeholder is not a single frame index between 1 and {frames} - 1, as Dask writes it' },
  frame0TooDeep: { code: 'GW_WIRE_FRAME0_TOO_DEEP', message: 'frame 0 nests deeper than {limit} levels' },
  badHandshake: { code: 'GW_WIRE_BAD_HANDSHAKE', message: 'the first message must be the handshake map without an op: {why}' },
  notAnOp: { code: 'GW_WIRE_NOT_AN_OP', message: 'message is not an operation: {why}' },
} as const;

export const wireError = defineErrors(WIRE_ERRORS);
