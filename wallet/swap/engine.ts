// Where swap crypto runs: in a worker thread (the default, so ~65 ms of DLEQ work per swap never
// blocks request handling), or inline (tests, benchmarks' baseline).
import { Worker } from 'node:worker_threads';
import { SwapStepError, type SwapFailure } from '../errors.ts';
import { runSwapRequest, type CompleteRequest, type CompleteResult, type PrepareRequest, type PrepareResult, type SwapRequest } from './steps.ts';

export interface SwapEngine {
  prepare(req: Omit<PrepareRequest, 'op'>): Promise<PrepareResult>;
  complete(req: Omit<CompleteRequest, 'op'>): Promise<CompleteResult>;
  /** Milliseconds the engine's thread has been busy (worker only; inline reports 0). */
  busyMs(): number;
  close(): Promise<void>;
}

/** Runs swap steps on the calling thread. */
export class InlineSwapEngine implements SwapEngine {
  prepare(req: Omit<PrepareRequest, 'op'>): Promise<PrepareResult> {
    return runSwapRequest({ op: 'prepare', ...req }) as Promise<PrepareResult>;
  }
  complete(req: Omit<CompleteRequest, 'op'>): Promise<CompleteResult> {
    return runSwapRequest({ op: 'complete', ...req }) as Promise<CompleteResult>;
  }
  busyMs(): number {
    return 0;
  }
  async close(): Promise<void> {}
}

interface Waiter {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; failure: SwapFailure };

/**
 * One worker thread, requests multiplexed by id. The thread is unref'd while idle so it never
 * keeps the process alive, and restarted if it dies (its requests fail as 'unavailable', which
 * callers already treat as an unknown outcome and retry).
 */
export class WorkerSwapEngine implements SwapEngine {
  /** @param requestTimeoutMs abort a mint call after this long (the outcome is then unknown and retried). */
  constructor(private readonly opts: { requestTimeoutMs?: number } = {}) {}

  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;
  private closed = false;
  private busyBeforeMs = 0;

  prepare(req: Omit<PrepareRequest, 'op'>): Promise<PrepareResult> {
    return this.send({ op: 'prepare', ...req }) as Promise<PrepareResult>;
  }

  complete(req: Omit<CompleteRequest, 'op'>): Promise<CompleteResult> {
    return this.send({ op: 'complete', ...req }) as Promise<CompleteResult>;
  }

  busyMs(): number {
    return this.busyBeforeMs + (this.worker ? this.worker.performance.eventLoopUtilization().active : 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private send(request: SwapRequest): Promise<unknown> {
    if (this.closed) return Promise.reject(new SwapStepError({ kind: 'unavailable', message: 'swap engine closed', refused: true }));
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, request });
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./worker.mjs', import.meta.url), { workerData: { requestTimeoutMs: this.opts.requestTimeoutMs } });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (this.waiting.size === 0) worker.unref();
      if (reply.ok) w.resolve(reply.result);
      else w.reject(new SwapStepError(reply.failure));
    });
    const fail = (message: string) => {
      if (this.worker === worker) {
        this.busyBeforeMs += worker.performance.eventLoopUtilization().active;
        this.worker = null;
      }
      for (const w of this.waiting.values()) w.reject(new SwapStepError({ kind: 'unavailable', message, refused: false }));
      this.waiting.clear();
    };
    worker.on('error', (err) => fail(`swap worker failed: ${err.message}`));
    worker.on('exit', (code) => fail(`swap worker exited (${code})`));
    this.worker = worker;
    return worker;
  }
}
