import type { KeySpec } from '../spec.js';

export const dashboardKeys: KeySpec[] = [];
