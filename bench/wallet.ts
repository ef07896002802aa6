// `wallet` bench case: the payment path's cost. The mint runs in its own process so the figures
// are the wallet's own work.
//   wallet_take_token_per_s      takeToken with a warm reserve (SQLite synchronous=NORMAL)
//   wallet_take_token_full_per_s the same with synchronous=FULL (an fsync per commit; what the daemon uses)
//   wallet_mint_roundtrips_per_request  share of tokens that needed a swap at the mint, in a steady
//                                stream of requests whose change comes back through the queue
//                                (baseline: a wallet without the reserve, exact match or swap)
//   change_swap_*_per_token      the change queue's swap cost per token, batched vs one by one
//   change_queue_loop_delay_max  how long swapping change in stalls the request thread
//   cashub_encode_us             encoding one token as cashuB (wallet/cashu-b.ts; baseline: cashu-ts's getEncodedToken)
//   cashub_metadata_us           reading a change token's mint, unit and amount (wallet/cashu-b-read.ts; baseline: cashu-ts's getTokenMetadata)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Amount, getEncodedToken, getTokenMetadata, Wallet } from '@cashu/cashu-ts';
import type { Figure } from './_figure.ts';
import { openDatabase } from '../db/sqlite.ts';
import { createWalletContext, type WalletContext } from '../wallet/context.ts';
import { createFundingQuote, waitForFunding } from '../wallet/funding.ts';
import { Payments, type PaymentsOptions } from '../wallet/payments/index.ts';
import { defaultReserve } from '../wallet/payments/reserve.ts';
import { EXACT_ONLY } from '../wallet/select.ts';
import { encodeCashuB } from '../wallet/cashu-b.ts';
import { tokenMetadata, type CashuTokenMetadata } from '../wallet/cashu-b-read.ts';
import { toCashuProof, type StoredProof } from '../wallet/store.ts';
import { InlineSwapEngine, WorkerSwapEngine, type SwapEngine } from '../wallet/swap/engine.ts';
import { requiredMsat, type ModelSpec } from '../test/world/provider.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

interface MintProcess {
  url: string;
  /** The simulated provider's URL, when started with models. */
  provider: string | null;
  pay(bolt11: string): Promise<void>;
  stop(): Promise<void>;
}

async function startMintProcess(models?: ModelSpec[]): Promise<MintProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, '_mint-process.ts'), JSON.stringify({ models })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout! });
  const queue: ((line: string) => void)[] = [];
  lines.on('line', (line) => queue.shift()?.(line));
  const nextLine = () => new Promise<string>((resolve) => queue.push(resolve));
  const { url, provider } = JSON.parse(await nextLine()) as { url: string; provider: string | null };
  return {
    url,
    provider,
    async pay(bolt11) {
      const answer = nextLine();
      child.stdin!.write(JSON.stringify({ pay: bolt11 }) + '\n');
      const a = JSON.parse(await answer) as { error?: string };
      if (a.error) throw new Error(a.error);
    },
    stop: () => new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.stdin!.end();
    }),
  };
}

function openWallet(mintUrl: string, synchronous: 'NORMAL' | 'FULL' = 'NORMAL'): { ctx: WalletContext; close(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-bench-wallet-'));
  const db = openDatabase(path.join(dir, 'satroute.sqlite'), { synchronous });
  const ctx: WalletContext = createWalletContext(db, { mints: [mintUrl] });
  return { ctx, close: () => { db.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

async function fund(ctx: WalletContext, mint: MintProcess, amountSat: number): Promise<void> {
  const q = await createFundingQuote(ctx, amountSat, { mint: mint.url });
  await mint.pay(q.bolt11);
  const done = await waitForFunding(ctx, q.quoteId, { pollMs: 5, timeoutMs: 10_000 });
  if (done.state !== 'issued') throw new Error(`funding ${done.state}`);
}

/** Deterministic pseudo-random numbers, so runs are comparable. */
function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

const yieldToLoop = () => new Promise((r) => setImmediate(r));

/** takeToken rate with a warm reserve: rounds of (refill, untimed) then tokens (timed). */
async function takeTokenRate(mint: MintProcess, synchronous: 'NORMAL' | 'FULL' = 'NORMAL'): Promise<Figure[]> {
  const w = openWallet(mint.url, synchronous);
  const payments = new Payments(w.ctx, { engine: new WorkerSwapEngine(), reserve: defaultReserve(256, 16), autoRefill: false });
  try {
    await fund(w.ctx, mint, 400_000);
    const rand = rng(1);
    const rounds = 40;
    const perRound = 25;
    const durations: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // Warm: refilled up to its targets. A refill swap makes at most `maxOutputs` (40) proofs, so
      // as many swaps as that takes (null: nothing missing).
      for (let k = 0; k < 50 && (await payments.reserve.refill(mint.url)); k++);
      for (let i = 0; i < perRound; i++) {
        const id = `t${r}-${i}`;
        const started = performance.now();
        await payments.takeToken({ paymentId: id, mint: mint.url, amountSat: 1 + Math.floor(rand() * 300), providerUrl: 'http://127.0.0.1:9' });
        durations.push(performance.now() - started);
        payments.settle(id);
      }
    }
    const n = durations.length;
    durations.sort((a, b) => a - b);
    const total = durations.reduce((a, b) => a + b, 0);
    const perS = n / (total / 1000);
    if (synchronous === 'FULL') {
      return [{ name: 'wallet_take_token_full_per_s', value: perS, unit: `tokens/s, the same with synchronous=FULL (an fsync per commit, as the daemon runs; p99 ${durations[Math.floor(n * 0.99)].toFixed(2)} ms)` }];
    }
    return [
      { name: 'wallet_take_token_per_s', value: perS, unit: `tokens/s (warm reserve; offline selection + cashuB encoding + one SQLite WAL commit, synchronous=NORMAL; ${n} tokens of 1..300 sat)` },
      { name: 'wallet_take_token_p99_ms', value: durations[Math.floor(n * 0.99)], unit: 'ms' },
      { name: 'wallet_take_token_roundtrip_share', value: payments.stats().roundtrips / n, unit: `of ${n} tokens needed a swap with the reserve refilled every ${perRound} tokens` },
    ];
  } finally {
    await payments.stop();
    w.close();
  }
}

const BENCH_MODEL: ModelSpec = { id: 'bench', promptSatsPerToken: 0.2, completionSatsPerToken: 1, contextLength: 1200, maxCompletionTokens: 300 };

/**
 * A stream of paid requests against a simulated provider, `concurrency` at a time; change flows
 * back through the queue in the background, as in the daemon.
 */
async function steadyStream(mint: MintProcess, label: string, opts: Omit<PaymentsOptions, 'engine'>, requests: number, concurrency = 4) {
  const w = openWallet(mint.url);
  const payments = new Payments(w.ctx, { engine: new WorkerSwapEngine(), ...opts });
  const provider = mint.provider!;
  try {
    await fund(w.ctx, mint, 60_000);
    if (opts.autoRefill !== false) await payments.reserve.refill(mint.url);
    payments.start();
    const rand = rng(7);
    let next = 0;
    const one = async (i: number) => {
      const body = { model: BENCH_MODEL.id, max_tokens: 20 + Math.floor(rand() * 280), messages: [{ role: 'user', content: 'x'.repeat(20 + Math.floor(rand() * 600)) }] };
      const amount = Math.ceil(requiredMsat(BENCH_MODEL, body) / 1000);
      const id = `${label}-${i}`;
      const taken = await payments.takeToken({ paymentId: id, mint: mint.url, amountSat: amount, providerUrl: provider });
      const res = await fetch(`${provider}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'X-Cashu': taken.token }, body: JSON.stringify(body) });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`provider answered ${res.status}`);
      payments.settle(id, res.headers.get('x-cashu'));
    };
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < requests) await one(next++);
    }));
    await payments.changeQueue.drain();
    const s = payments.stats();
    return { roundtrips: s.roundtrips / requests, background: (s.changeSwaps + s.refills) / requests, tokensPerChangeSwap: s.changeTokens / Math.max(1, s.changeSwaps) };
  } finally {
    await payments.stop();
    w.close();
  }
}

async function roundTrips(mint: MintProcess): Promise<Figure[]> {
  const n = 160;
  const ours = await steadyStream(mint, 'reserve', {}, n);
  // Baseline: what a plain wallet does (cashu-ts send): an exact offline match, else a swap.
  const plain = await steadyStream(mint, 'plain', { reserve: { targets: new Map(), minCount: 0 }, autoRefill: false, policy: () => EXACT_ONLY }, n / 2);
  return [
    { name: 'wallet_mint_roundtrips_per_request', value: ours.roundtrips, unit: `share of ${n} requests (4 at a time) whose token needed or waited for a mint swap (target < 0.05)`, baseline: plain.roundtrips, ratio: plain.roundtrips ? ours.roundtrips / plain.roundtrips : null },
    { name: 'wallet_background_swaps_per_request', value: ours.background, unit: `change + reserve swaps per request, off the request path (${ours.tokensPerChangeSwap.toFixed(1)} change tokens per swap)` },
  ];
}

/** Change tokens as a provider would hand them out: ~4 proofs each. */
async function changeTokens(mint: MintProcess, count: number): Promise<string[]> {
  const w = new Wallet(mint.url);
  await w.loadMint();
  const q = await w.createMintQuoteBolt11(count * 15);
  await mint.pay(q.request);
  let proofs = await w.mintProofsBolt11(count * 15, q.quote, undefined, { type: 'random', denominations: Array(count).fill([8, 4, 2, 1]).flat() });
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    tokens.push(getEncodedToken({ mint: mint.url, unit: 'sat', proofs: proofs.slice(0, 4) }));
    proofs = proofs.slice(4);
  }
  return tokens;
}

/** The longest the event loop went without running a 1 ms timer, in ms (perf_hooks' histogram misreports when re-created). */
function stallMeter(): { stop(): number } {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
  }, 1);
  return { stop: () => (clearInterval(timer), Math.max(max, performance.now() - last)) };
}

/** Swap `tokens` through a change queue with this batch size; per-token wall and worker-thread time, and the request thread's worst stall. */
async function changeRun(mint: MintProcess, engine: SwapEngine, tokens: string[], maxBatch: number) {
  const w = openWallet(mint.url);
  // No reserve here: outputs are the plain split, so the figures show what batching alone saves.
  const payments = new Payments(w.ctx, { engine, changeQueue: { maxBatch }, reserve: { targets: new Map(), minCount: 0 }, autoRefill: false });
  try {
    // Warm up: keys loaded, worker started and compiled.
    payments.changeQueue.enqueue('warm', 'change', tokens[0], mint.url);
    await payments.changeQueue.drain();
    const rest = tokens.slice(1);
    const busyBefore = engine.busyMs();
    const stall = stallMeter();
    const started = performance.now();
    if (maxBatch === 1) {
      for (const [i, tk] of rest.entries()) {
        payments.changeQueue.enqueue(`c${i}`, 'change', tk, mint.url);
        await payments.changeQueue.drain();
      }
    } else {
      rest.forEach((tk, i) => payments.changeQueue.enqueue(`c${i}`, 'change', tk, mint.url));
      await payments.changeQueue.drain();
    }
    const wallMs = performance.now() - started;
    const loopDelayMaxMs = stall.stop();
    const received = rest.filter((_, i) => payments.changeQueue.rowsOf(`c${i}`)[0]?.state === 'received').length;
    if (received !== rest.length) throw new Error(`only ${received}/${rest.length} change tokens received`);
    return { wallMsPerToken: wallMs / rest.length, busyMsPerToken: (engine.busyMs() - busyBefore) / rest.length, loopDelayMaxMs };
  } finally {
    await payments.stop();
    w.close();
  }
}

async function changeCost(mint: MintProcess): Promise<Figure[]> {
  const tokens = await changeTokens(mint, 33);
  const single = await changeRun(mint, new WorkerSwapEngine(), tokens.slice(0, 11), 1);
  const batched = await changeRun(mint, new WorkerSwapEngine(), tokens.slice(11, 22), 10);
  const inline = await changeRun(mint, new InlineSwapEngine(), tokens.slice(22, 33), 10);
  return [
    { name: 'change_swap_cpu_ms_per_token', value: batched.busyMsPerToken, unit: 'ms of swap-thread time per change token, batches of 10 (baseline: one swap per token)', baseline: single.busyMsPerToken, ratio: batched.busyMsPerToken / single.busyMsPerToken },
    { name: 'change_swap_wall_ms_per_token', value: batched.wallMsPerToken, unit: 'ms per change token, batches of 10 (baseline: one swap per token)', baseline: single.wallMsPerToken, ratio: batched.wallMsPerToken / single.wallMsPerToken },
    { name: 'change_queue_loop_delay_max_ms', value: batched.loopDelayMaxMs, unit: 'ms worst request-thread stall while a batch of 10 is swapped in a worker (baseline: swapped on the request thread)', baseline: inline.loopDelayMaxMs, ratio: batched.loopDelayMaxMs / inline.loopDelayMaxMs },
  ];
}

/**
 * Microseconds per call of `call(i)`, i = 0 .. n-1: the median of 5 timed runs after 2 warm-up runs
 * (JIT-compiled). What the calls return is summed and checked, so that none is optimised away.
 */
function medianUsPerCall(call: (i: number) => number, n: number): number {
  const runs: number[] = [];
  let sum = 0;
  for (let r = 0; r < 7; r++) {
    const started = performance.now();
    for (let i = 0; i < n; i++) sum += call(i);
    if (r >= 2) runs.push(((performance.now() - started) * 1000) / n);
  }
  if (sum === 0) throw new Error('the timed calls returned nothing');
  return runs.sort((a, b) => a - b)[2];
}

/** A typical token (3-5 proofs of one keyset, their DLEQs stored) encoded as take.ts does, ours vs cashu-ts, in us a token. */
function cashubEncode(): Figure[] {
  const rand = rng(3);
  const hex = (bytes: number) => Array.from({ length: bytes }, () => Math.floor(rand() * 256).toString(16).padStart(2, '0')).join('');
  const mint = 'https://mint.example.com';
  const keysetId = '01' + hex(32);
  const tokens = Array.from({ length: 64 }, (_, t) => Array.from({ length: 3 + (t % 3) }, (): StoredProof => ({
    secret: hex(32), mint, unit: 'sat', keysetId, amount: 2 ** Math.floor(rand() * 12), C: '02' + hex(32), dleq: { e: hex(32), s: hex(32), r: hex(32) },
    witness: null, p2pkE: null, state: 'unspent', reasonKind: null, reasonRef: null, source: 'bench', createdAt: 0,
  })));
  const ours = (proofs: StoredProof[]) => encodeCashuB({ mint, unit: 'sat', proofs });
  const theirs = (proofs: StoredProof[]) => getEncodedToken({ mint, unit: 'sat', proofs: proofs.map(toCashuProof) }, { removeDleq: true });
  if (tokens.some((p) => ours(p) !== theirs(p))) throw new Error('encodeCashuB and cashu-ts differ');
  const value = medianUsPerCall((i) => ours(tokens[i & 63]).length, 40_000);
  const baseline = medianUsPerCall((i) => theirs(tokens[i & 63]).length, 8_000);
  return [{ name: 'cashub_encode_us', value, unit: 'us to encode a 3-5 proof token as cashuB, DLEQ removed (baseline: cashu-ts getEncodedToken, the same string)', baseline, ratio: value / baseline }];
}

/** A typical change token (1-6 proofs of one 01 keyset, with DLEQs, as a node sends it) read as enqueue does, ours vs cashu-ts, in us a token. */
function cashubMetadata(): Figure[] {
  const rand = rng(5);
  const hex = (bytes: number) => Array.from({ length: bytes }, () => Math.floor(rand() * 256).toString(16).padStart(2, '0')).join('');
  const mint = 'https://mint.example.com';
  const id = '01' + hex(32);
  const tokens = Array.from({ length: 64 }, (_, t) => getEncodedToken({ mint, unit: 'sat', proofs: Array.from({ length: 1 + (t % 6) }, () => ({
    id, amount: Amount.from(2 ** Math.floor(rand() * 12)), secret: hex(32), C: '02' + hex(32), dleq: { e: hex(32), s: hex(32), r: hex(32) },
  })) }));
  const theirs = (token: string): CashuTokenMetadata => {
    const meta = getTokenMetadata(token);
    return { mint: meta.mint, unit: meta.unit, amount: meta.amount.toNumber() };
  };
  if (tokens.some((t) => JSON.stringify(tokenMetadata(t)) !== JSON.stringify(theirs(t)))) throw new Error('tokenMetadata and cashu-ts differ');
  const value = medianUsPerCall((i) => tokenMetadata(tokens[i & 63]).amount, 40_000);
  const baseline = medianUsPerCall((i) => theirs(tokens[i & 63]).amount, 8_000);
  return [{ name: 'cashub_metadata_us', value, unit: 'us to read mint, unit and amount of a 1-6 proof change token with DLEQs (baseline: cashu-ts getTokenMetadata, the same answer)', baseline, ratio: value / baseline }];
}

export async function run(): Promise<Figure[]> {
  const encode = cashubEncode();
  const metadata = cashubMetadata();
  const mint = await startMintProcess([BENCH_MODEL]);
  try {
    return [...encode, ...metadata, ...(await takeTokenRate(mint)), ...(await takeTokenRate(mint, 'FULL')), ...(await roundTrips(mint)), ...(await changeCost(mint))];
  } finally {
    await mint.stop();
  }
}
