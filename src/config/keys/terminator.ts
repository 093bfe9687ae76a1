import type { KeySpec } from '../spec.js';

export const terminatorKeys: KeySpec[] = [];
