/** Crash injection for certs passphrase and certs renew --name gateway (crash-harness.ts says what is proved). */
import t from 'tap';
import { cases, crashAtEachPoint, prepareTemplates } from './crash-harness.js';

t.before(() => prepareTemplates(t));
for (const name of ['certs passphrase', 'certs renew --name gateway']) {
  t.test(`${name}: killed at each point, the gateway still loads the state directory`, (t) => crashAtEachPoint(t, cases[name]!));
}
