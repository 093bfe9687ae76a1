import t from 'tap';
import { allows, routeFor } from '../../src/dashboard/routes.js';

t.test('which scope each request needs, as a truth table', async (t) => {
  const table: Array<[string, string, boolean, string]> = [
    ['GET', '/status', false, 'view'],
    ['HEAD', '/metrics', false, 'view'],
    ['GET', '/eventstream', true, 'view'],
    ['POST', '/status', false, 'admin'],
    ['PUT', '/x', false, 'admin'],
    ['DELETE', '/x', false, 'admin'],
    ['OPTIONS', '/x', false, 'admin'],
    ['GET', '/api/v1/retire_workers', false, 'admin'],
    ['GET', '/api/v1', false, 'admin'],
    ['GET', '/api', false, 'admin'],
    ['GET', '/apiary', false, 'view'],
  ];
  for (const [method, path, upgrade, need] of table) t.match(routeFor(method, path, upgrade), { kind: 'proxy', need }, `${method} ${path}`);
  t.match(routeFor('GET', '/gateway/health', false), { kind: 'health', auth: false });
  t.match(routeFor('POST', '/gateway/login', false), { kind: 'login', auth: false });
  t.ok(allows('admin', 'admin'));
  t.ok(allows('admin', 'view'));
  t.ok(allows('view', 'view'));
  t.notOk(allows('view', 'admin'));
});
