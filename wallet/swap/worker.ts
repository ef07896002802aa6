// Worker thread body: answers swap requests (see steps.ts) so their crypto never stalls the
// daemon's event loop. Started through worker.mjs, which loads tsx first.
import { parentPort, workerData } from 'node:worker_threads';
import { setGlobalRequestOptions } from '@cashu/cashu-ts';
import { SwapStepError } from '../errors.ts';
import { runSwapRequest, type SwapRequest } from './steps.ts';

interface Envelope {
  id: number;
  request: SwapRequest;
}

if (!parentPort) throw new Error('wallet/swap/worker.ts must run in a worker thread');
const port = parentPort;
// cashu-ts request options are per thread: a mint that hangs must not hold a swap for ever
// (a timed-out swap has an unknown outcome and is re-sent with the same outputs later).
setGlobalRequestOptions({ requestTimeout: (workerData as { requestTimeoutMs?: number } | undefined)?.requestTimeoutMs ?? 20_000 });

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
