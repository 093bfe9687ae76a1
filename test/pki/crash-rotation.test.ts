/** Crash injection for each certs rotate-ca step (crash-harness.ts says what is proved). */
import t from 'tap';
import { cases, crashAtEachPoint, prepareTemplates } from './crash-harness.js';

t.before(() => prepareTemplates(t));
for (const name of ['certs rotate-ca begin', 'certs rotate-ca switch', 'certs rotate-ca finish']) {
  t.test(`${name}: killed at each point, the gateway still loads the state directory`, (t) => crashAtEachPoint(t, cases[name]!));
}
