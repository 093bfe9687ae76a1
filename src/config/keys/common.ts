import type { KeySpec } from '../spec.js';

export const commonKeys: KeySpec[] = [];
