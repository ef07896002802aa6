// Hostile answers to a paid call, over a real socket: any status, any body (JSON of any shape
// and depth, junk, an event stream of junk events) and any X-Cashu / cost headers. callProvider
// gives an answer whose body can be passed on (serialised) with a safe reported cost, a Refusal,
// or a ProviderCallError - nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ProviderCallError } from '../../protocol/call-errors.ts';
import { callProvider, createProviderAgents } from '../../protocol/provider-call.ts';
import { assertAsyncProperty } from '../property.ts';
import { isSafeAmount, numberish } from './arbitraries.ts';

const TOKEN = 'cashuBtokentokentokentoken';
const BODY = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 };

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** JSON text nested `depth` levels deep (deeper than JSON.stringify can write back). */
const deepJson = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
const value = fc.oneof({ weight: 3, arbitrary: numberish }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
const answerBody = fc.oneof(
  fc.record({ choices: fc.oneof(fc.array(fc.record({ message: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }), { maxLength: 2 }), value), usage: fc.oneof(fc.record({ prompt_tokens: value, completion_tokens: value, cost: fc.oneof(fc.record({ total_msats: value }, { requiredKeys: [] }), value) }, { requiredKeys: [] }), value) }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 60 }),
  fc.integer({ min: 2_000, max: 50_000 }).map((d) => `{"choices":[{"message":${deepJson(d)}}]}`),
);
const sseBody = fc.array(fc.oneof(answerBody.map((b) => `data: ${b.replace(/\n/g, ' ')}\n\n`), fc.constantFrom('data: [DONE]\n\n', ': ping\n\n', 'event: cost\ndata: {"cost":{"total_msats":-5}}\n\n', 'data: {"choices":[]\n'), fc.integer({ min: 2_000, max: 20_000 }).map((d) => `data: {"choices":[${deepJson(d)}]}\n\n`)), { maxLength: 6 }).map((parts) => parts.join(''));
const answerArb: fc.Arbitrary<Answer> = fc.oneof(
  fc.record({
    status: fc.oneof({ weight: 4, arbitrary: fc.constant(200) }, { weight: 1, arbitrary: fc.constantFrom(400, 402, 413, 429, 500, 502, 503) }),
    headers: fc.record({ 'content-type': fc.constant('application/json'), 'x-cashu': fc.constantFrom('cashuBchange', ''), 'x-routstr-cost-msats': fc.oneof(fc.nat().map(String), fc.string({ maxLength: 10 })) }, { requiredKeys: ['content-type'] }),
    body: answerBody,
  }),
  fc.record({ status: fc.constant(200), headers: fc.constant({ 'content-type': 'text/event-stream' }), body: sseBody }),
);

test('any answer to a paid call is a usable answer, a Refusal or a ProviderCallError', async (t) => {
  let next: Answer = { status: 200, headers: {}, body: '' };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(next.status, next.headers);
      res.end(next.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const agents = createProviderAgents();
  t.after(() => {
    agents.destroy();
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await assertAsyncProperty(
    fc.asyncProperty(answerArb, fc.boolean(), async (answer, stream) => {
      next = answer;
      try {
        const out = await callProvider({ providerUrl: url, endpoint: '/v1/chat/completions', body: { ...BODY, stream }, payment: { kind: 'xcashu', token: TOKEN } }, { agents });
        if (out.kind !== 'ok') return; // a Refusal: outcome.property.test.ts checks those
        if (out.stream) {
          for await (const item of out.events) assert.equal(typeof JSON.stringify(item.json), 'string', 'every chunk can be passed on');
          for (const r of out.events.reported().readings) assert.ok(isSafeAmount(r.totalMsat));
        } else {
          assert.equal(typeof JSON.stringify(out.body), 'string', 'the answer can be passed on');
          for (const r of out.reported.readings) assert.ok(isSafeAmount(r.totalMsat));
        }
      } catch (err) {
        assert.ok(err instanceof ProviderCallError, `not a ProviderCallError: ${(err as Error)?.stack ?? String(err)}`);
      }
    }),
    { seed: 1421, numRuns: 100 },
  );
});
