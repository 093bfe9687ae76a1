/** Every key `run` accepts, grouped by the component that owns it; RunConfig is their typed slices. */
import type { KeySpec, SliceOf } from '../spec.js';
import { commonKeys } from './common.js';
import { terminatorKeys } from './terminator.js';
import { policyKeys } from './policy.js';
import { dashboardKeys } from './dashboard.js';
import { telemetryKeys } from './telemetry.js';
import { credentialsKeys } from './credentials.js';
import { supervisorKeys } from './supervisor.js';

export const runGroups = {
  common: commonKeys,
  terminator: terminatorKeys,
  policy: policyKeys,
  dashboard: dashboardKeys,
  telemetry: telemetryKeys,
  credentials: credentialsKeys,
  supervisor: supervisorKeys,
};

export type RunGroups = typeof runGroups;
/** The configuration of `run`: one typed slice per component. */
export type RunConfig = { readonly [G in keyof RunGroups]: SliceOf<RunGroups[G]> };

/** The same keys as one list, in declaration order (--help, the flag parser, presence checks). */
export const runKeys: readonly KeySpec[] = Object.values(runGroups).flatMap((g) => Object.values(g));
