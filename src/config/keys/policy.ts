import type { KeySpec } from '../spec.js';

export const policyKeys: KeySpec[] = [];
