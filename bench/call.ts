// `call` bench case: what protocol/provider-call adds to one request, against a bare node:http
// request (same keep-alive agent settings, body serialised and the answer JSON-parsed, as any
// client must) to the same server. The servers run in child processes, so only the client
// side is measured here.
//   call_overhead_p50_ms / _p99_ms   a paid 200 answer recorded from a world provider (change
//                                    header, usage, cost) and replayed: classification, shape
//                                    check and cost reading included; one request at a time
//   call_overhead_c10_p99_ms         the same, 10 requests at a time
//   call_refusal_overhead_p50_ms     the world provider itself, answering 402 need_more (no
//                                    redemption, so the same token serves every request)
//   call_fetch_overhead_p50_ms       global fetch (undici) against the same bare request: why
//                                    provider-call uses node:http
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { getEncodedToken, Wallet } from '@cashu/cashu-ts';
import type { Figure } from './_figure.ts';
import { callProvider, createProviderAgents, type CallRequest } from '../protocol/provider-call.ts';
import { requiredMsat, type ModelSpec } from '../test/world/provider.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const MODEL: ModelSpec = { id: 'bench', promptSatsPerToken: 0.02, completionSatsPerToken: 0.05, contextLength: 4096, maxCompletionTokens: 512 };
const BODY = { model: MODEL.id, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name three prime numbers.' }], max_tokens: 64 };

interface Child {
  first: Record<string, unknown>;
  send(line: unknown): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function child(script: string, arg: unknown): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(here, script), JSON.stringify(arg)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout! });
  const queue: ((line: string) => void)[] = [];
  lines.on('line', (line) => queue.shift()?.(line));
  const next = () => new Promise<Record<string, unknown>>((resolve) => queue.push((l) => resolve(JSON.parse(l) as Record<string, unknown>)));
  const first = await next();
  return {
    first,
    async send(line) {
      const answer = next();
      proc.stdin!.write(JSON.stringify(line) + '\n');
      return answer;
    },
    stop: () =>
      new Promise((resolve) => {
        proc.once('exit', () => resolve());
        proc.stdin!.end();
      }),
  };
}

/** A bare keep-alive node:http POST: serialise, send, read, JSON.parse. */
function bare(agent: http.Agent, url: string, headers: Record<string, string>, body: unknown): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': String(payload.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        JSON.parse(text);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

/** Serial latencies of each way, interleaved (rotating order) so drift hits them alike. */
async function serial(ways: Record<string, () => Promise<unknown>>, n: number, warmup = 300): Promise<Record<string, number[]>> {
  const names = Object.keys(ways);
  const out: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < warmup + n; i++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length];
      const t = performance.now();
      await ways[name]();
      if (i >= warmup) out[name].push(performance.now() - t);
    }
  }
  for (const k of names) out[k].sort((a, b) => a - b);
  return out;
}

/** Latencies with `concurrency` requests in flight, one way at a time, blocks alternating. */
async function concurrent(ways: Record<string, () => Promise<unknown>>, concurrency: number, perBlock: number, blocks: number): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
  for (let b = 0; b < blocks; b++) {
    for (const [name, fn] of Object.entries(ways)) {
      let left = perBlock;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (left-- > 0) {
            const t = performance.now();
            await fn();
            if (b > 0) out[name].push(performance.now() - t);
          }
        }),
      );
    }
  }
  for (const k of Object.keys(out)) out[k].sort((a, b) => a - b);
  return out;
}

export async function run(): Promise<Figure[]> {
  const world = await child('_mint-process.ts', { models: [MODEL] });
  const mintUrl = world.first.url as string;
  const providerUrl = world.first.provider as string;
  let replay: Child | undefined;
  const agents = createProviderAgents();
  const bareAgent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 4_000, scheduling: 'lifo' });
  try {
    // Tokens from the world mint: one big enough to be served (recorded), one too small (402).
    const wallet = new Wallet(mintUrl, { unit: 'sat' });
    await wallet.loadMint();
    const quote = await wallet.createMintQuoteBolt11(200);
    await world.send({ pay: quote.request });
    const proofs = await wallet.mintProofsBolt11(200, quote.quote);
    const needSat = Math.ceil(requiredMsat(MODEL, BODY) / 1000);
    const { keep, send } = await wallet.send(needSat, proofs);
    const paid = getEncodedToken({ mint: mintUrl, unit: 'sat', proofs: send });
    const small = getEncodedToken({ mint: mintUrl, unit: 'sat', proofs: (await wallet.send(1, keep)).send });

    const recorded = await bare(bareAgent, `${providerUrl}/v1/chat/completions`, { 'x-cashu': paid }, BODY);
    if (recorded.status !== 200) throw new Error(`recording a paid answer failed: HTTP ${recorded.status}`);
    const keepHeaders = Object.fromEntries(
      Object.entries(recorded.headers).filter(([k, v]) => typeof v === 'string' && !['connection', 'keep-alive', 'date', 'content-length', 'transfer-encoding'].includes(k)),
    ) as Record<string, string>;
    replay = await child('_replay-process.ts', { status: 200, headers: keepHeaders, body: recorded.text });
    const replayUrl = replay.first.url as string;

    const req = (url: string, token: string): CallRequest => ({ providerUrl: url, endpoint: '/v1/chat/completions', body: BODY, payment: { kind: 'xcashu', token } });
    const okWays = {
      bare: () => bare(bareAgent, `${replayUrl}/v1/chat/completions`, { 'x-cashu': paid }, BODY),
      call: async () => {
        const r = await callProvider(req(replayUrl, paid), { agents });
        if (r.kind !== 'ok') throw new Error(`replayed answer classified ${r.kind}`);
      },
      fetch: async () => {
        const res = await fetch(`${replayUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-cashu': paid }, body: JSON.stringify(BODY) });
        await res.json();
      },
    };
    const s = await serial(okWays, 3000);
    const c = await concurrent({ bare: okWays.bare, call: okWays.call }, 10, 1000, 4);
    const refusal = await serial(
      {
        bare: () => bare(bareAgent, `${providerUrl}/v1/chat/completions`, { 'x-cashu': small }, BODY),
        call: async () => {
          const r = await callProvider(req(providerUrl, small), { agents });
          if (r.kind !== 'need_more') throw new Error(`expected need_more, got ${r.kind}`);
        },
      },
      1500,
    );

    const p50 = (x: number[]) => pct(x, 0.5);
    const p99 = (x: number[]) => pct(x, 0.99);
    return [
      { name: 'call_overhead_p50_ms', value: p50(s.call) - p50(s.bare), unit: `ms added per paid non-streaming call (p50 ${p50(s.call).toFixed(3)} vs bare node:http ${p50(s.bare).toFixed(3)} ms, serial, keep-alive)`, baseline: p50(s.bare), ratio: p50(s.call) / p50(s.bare) },
      { name: 'call_overhead_p99_ms', value: p99(s.call) - p99(s.bare), unit: `ms added at p99 (${p99(s.call).toFixed(3)} vs ${p99(s.bare).toFixed(3)} ms)`, baseline: p99(s.bare), ratio: p99(s.call) / p99(s.bare) },
      { name: 'call_overhead_c10_p99_ms', value: p99(c.call) - p99(c.bare), unit: `ms added at p99 with 10 in flight (${p99(c.call).toFixed(3)} vs ${p99(c.bare).toFixed(3)} ms; p50 ${p50(c.call).toFixed(3)} vs ${p50(c.bare).toFixed(3)})`, baseline: p99(c.bare), ratio: p99(c.call) / p99(c.bare) },
      { name: 'call_refusal_overhead_p50_ms', value: p50(refusal.call) - p50(refusal.bare), unit: `ms added per call to a world provider answering 402 need_more (${p50(refusal.call).toFixed(3)} vs ${p50(refusal.bare).toFixed(3)} ms)`, baseline: p50(refusal.bare), ratio: p50(refusal.call) / p50(refusal.bare) },
      { name: 'call_fetch_overhead_p50_ms', value: p50(s.fetch) - p50(s.bare), unit: `ms global fetch adds over bare node:http (${p50(s.fetch).toFixed(3)} ms p50, p99 ${p99(s.fetch).toFixed(3)})`, baseline: p50(s.bare), ratio: p50(s.fetch) / p50(s.bare) },
    ];
  } finally {
    agents.destroy();
    bareAgent.destroy();
    await replay?.stop();
    await world.stop();
  }
}
