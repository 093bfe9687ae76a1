/**
 * refuseDaskPeer against real Dask on both versions: whatever a refused peer
 * asks first, its Python raises with the gateway's words.
 */
import t from 'tap';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { refuseDaskPeer, type RefusalOutcome } from '../../src/terminator/dask-refusal.js';
import { eachDaskVersion, runClient } from '../helpers/dask.js';

const TEXT = 'scheduler-gateway refused this connection (GW_TEST_REFUSAL): a test';

async function refusingServer(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; outcomes: RefusalOutcome[] }> {
  const outcomes: RefusalOutcome[] = [];
  const server: Server = createServer((s) => void refuseDaskPeer(s, { text: TEXT, timeoutMs: 10_000 }).then((o) => outcomes.push(o)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, outcomes };
}

eachDaskVersion(t, 'a refused peer sees the text from rpc, Client and Worker', async (t, version) => {
  const { port, outcomes } = await refusingServer(t);
  const out = await runClient<Record<string, string>>(`
import asyncio, json
from distributed.core import rpc
from distributed import Client, Worker
async def main():
    res = {}
    r = rpc("tcp://127.0.0.1:${port}")
    try:
        await r.identity()
        res["rpc"] = "no exception"
    except Exception as e:
        res["rpc"] = f"{type(e).__name__}: {e}"
    await r.close_rpc()
    try:
        c = await Client("tcp://127.0.0.1:${port}", asynchronous=True, timeout=10)
        res["client"] = "no exception"
        await c.close()
    except Exception as e:
        res["client"] = f"{type(e).__name__}: {e}"
    try:
        w = await asyncio.wait_for(Worker("tcp://127.0.0.1:${port}", nthreads=1), 20)
        res["worker"] = "no exception"
        await w.close()
    except Exception as e:
        res["worker"] = f"{type(e).__name__}: {e} <- {type(e.__cause__).__name__}: {e.__cause__}"
    return res
print(json.dumps(asyncio.run(main())))
`, { version, timeoutMs: 60_000 });
  t.match(out.rpc, `Exception: ${TEXT}`, 'rpc raises Exception(text)');
  t.match(out.client, TEXT, 'Client() raises with the text');
  t.match(out.worker, /Worker failed to start.*Unexpected response from register/, 'a Worker fails its registration instead of retrying');
  t.match(out.worker, TEXT, 'and the text is in its error');
  t.ok(outcomes.filter((o) => o === 'answered').length >= 3, `each request was answered (${outcomes.join(', ')})`);
});
