/**
 * Runs one `certs` command in its own process and kills itself with SIGKILL
 * when the command reaches the named crash point (src/pki/crash-points.ts):
 *   node --import <tap ts loader> crash-child.ts POINT certs-arg...
 * Spawned by crash.test.ts; exits normally if the point is never reached.
 */
import { writeSync } from 'node:fs';
import { setCrashProbe } from '../../src/pki/crash-points.js';
import { main } from '../../src/cli/certs.js';
import { runCommand } from '../../src/cli/run-command.js';
import { processIo } from '../../src/cli/io.js';

const [point, ...argv] = process.argv.slice(2);
setCrashProbe((p) => {
  if (p !== point) return;
  writeSync(1, `crashing at ${p}\n`);
  process.kill(process.pid, 'SIGKILL');
});
process.exitCode = await runCommand('certs', main, argv, processIo());
