/** Every key `run` accepts, grouped by the component that owns it. */
import type { KeySpec } from '../spec.js';
import { commonKeys } from './common.js';
import { terminatorKeys } from './terminator.js';
import { policyKeys } from './policy.js';
import { dashboardKeys } from './dashboard.js';
import { telemetryKeys } from './telemetry.js';
import { credentialsKeys } from './credentials.js';
import { supervisorKeys } from './supervisor.js';

export const runKeys: readonly KeySpec[] = [
  ...commonKeys,
  ...terminatorKeys,
  ...policyKeys,
  ...dashboardKeys,
  ...telemetryKeys,
  ...credentialsKeys,
  ...supervisorKeys,
];
