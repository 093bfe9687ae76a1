import type { KeySpec } from '../spec.js';

export const credentialsKeys: KeySpec[] = [];
