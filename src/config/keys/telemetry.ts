import type { KeySpec } from '../spec.js';

export const telemetryKeys: KeySpec[] = [];
