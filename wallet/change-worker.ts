// Worker thread body: answers swap requests (see swap-ops.ts) so their crypto never stalls the
// daemon's event loop. Started through change-worker.mjs, which loads tsx first.
import { parentPort } from 'node:worker_threads';
import { runSwapRequest, SwapStepError, type SwapRequest } from './swap-ops.ts';

interface Envelope {
  id: number;
  request: SwapRequest;
}

if (!parentPort) throw new Error('change-worker.ts must run in a worker thread');
const port = parentPort;

port.on('message', (msg: Envelope) => {
  void (async () => {
    try {
      const result = await runSwapRequest(msg.request);
      port.postMessage({ id: msg.id, ok: true, result });
    } catch (err) {
      const failure = err instanceof SwapStepError ? err.failure : { kind: 'invalid', message: (err as Error).message ?? String(err) };
      port.postMessage({ id: msg.id, ok: false, failure });
    }
  })();
});
