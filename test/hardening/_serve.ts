import { startBothPorts, startEcho, startHttpUpstream } from './harness.js';
const fns: Array<() => unknown> = [];
const t = { teardown: (f: () => unknown) => fns.push(f) };
const echo = await startEcho(t);
const up = await startHttpUpstream(t);
const b = await startBothPorts({ t, scheduler: `127.0.0.1:${echo.port}`, dashboardUpstreamPort: up.port, flags: { 'failed-handshake-rate': '1000000' } });
const c = await b.cluster.issue('client', 'grader');
console.log(JSON.stringify({ p6: b.port8786, p7: b.port8787, cert: c.certPath, key: c.keyPath, ca: b.cluster.caPath }));
setTimeout(async () => { for (const f of fns.reverse()) await f(); process.exit(0); }, 600_000);
