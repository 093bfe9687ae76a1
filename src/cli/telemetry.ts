import type { CliIo } from './io.js';
import { GatewayError } from '../errors/base.js';

// Placeholder until its issue lands: refuses plainly instead of pretending.
export async function main(_argv: string[], _io: CliIo): Promise<number> {
  throw new GatewayError('GW_NOT_IMPLEMENTED', "'telemetry' is not implemented yet");
}
