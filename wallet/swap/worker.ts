// Worker thread body: answers swap requests (see steps.ts) so their crypto never stalls the
// daemon's event loop. Started through worker.mjs, which loads tsx first.
import fs from 'node:fs';
import os from 'node:os';
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

lowerPriority();

/**
 * Run this thread's crypto below the request path's priority (Linux: nice +5 for this thread
 * alone - not more: a payment that needs a swap waits for this thread, and other work on the box
 * must not starve it), so a burst of swaps on a 2-core box yields the CPU to the event loop that answers
 * clients instead of stretching their latency. Best effort: elsewhere it stays as it is.
 */
function lowerPriority(): void {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + 5));
  } catch {
    // not Linux, or not allowed: the thread keeps the process's priority
  }
}

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
