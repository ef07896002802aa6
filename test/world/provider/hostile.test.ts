// The hostile knobs (hostile.ts): each lie is told as described, the money in it is real at
// the mint, and everything else about the answer stays what an honest node sends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { WebSocket } from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { npubEncode } from 'nostr-tools/nip19';
import type { Event } from 'nostr-tools/pure';
import { startMint } from '../mint.ts';
import { startRelay } from '../relay.ts';
import { pyDumps } from './http.ts';
import { chat, expectedFor, market, Payer, provider } from './fixture.ts';

useWebSocketImplementation(WebSocket);

interface ChatAnswer {
  choices?: unknown;
  usage?: Record<string, unknown> & { cost?: { total_msats?: unknown } };
}

const honest = expectedFor('sim-a');
const owedFrom = (paidSat: number, chargedMsat = honest.costMsat) => paidSat - Math.ceil(chargedMsat / 1000);

/** Read a streamed body until `enough` says so (or it ends); then drop the connection. */
async function readUntil(res: Response, enough: (text: string) => boolean): Promise<{ text: string; ended: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { text, ended: true };
    text += decoder.decode(value, { stream: true });
    if (enough(text)) {
      await reader.cancel();
      return { text, ended: false };
    }
  }
}

test('usageReportFactor: usage says half the tokens while the charge is for all of them', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { usageReportFactor: 0.5 } });
  const res = await chat(p, await payer.token(10));
  const body = (await res.json()) as ChatAnswer;
  assert.equal(body.usage?.prompt_tokens, Math.floor(honest.promptTokens / 2));
  assert.equal(body.usage?.completion_tokens, Math.floor(honest.completionTokens / 2));
  assert.equal(body.usage?.cost?.total_msats, honest.costMsat, 'by default it reports the cost it charged');
  assert.equal(await payer.redeem(res.headers.get('x-cashu')!), owedFrom(10));

  p.knobs.overchargeReports = 'honest';
  const quiet = await chat(p, await payer.token(10));
  const quietBody = (await quiet.json()) as ChatAnswer;
  const halfCost = Math.floor(honest.promptTokens / 2) * 10 + Math.floor(honest.completionTokens / 2) * 20;
  assert.equal(quietBody.usage?.cost?.total_msats, halfCost, "'honest': the cost of the tokens it admits to");
  assert.equal(quiet.headers.get('x-routstr-cost-msats'), String(halfCost));
  assert.equal(await payer.redeem(quiet.headers.get('x-cashu')!), owedFrom(10), 'still charged for every token');
});

test('changeSurplus: the change is worth more than was owed, real ecash from the pool, as far as the pool holds it', async (t) => {
  const { payer } = await market(t, 3000);
  const p = await provider(t, [payer.mint.url], { knobs: { changeSurplus: 7 } });
  const unfunded = await chat(p, await payer.token(10));
  assert.equal(await payer.redeem(unfunded.headers.get('x-cashu')!), 10, 'a fresh node can give away no more than it just took');

  assert.equal(await p.fund(await payer.token(20)), 20);
  const res = await chat(p, await payer.token(10));
  assert.equal(res.status, 200);
  assert.equal(await payer.redeem(res.headers.get('x-cashu')!), owedFrom(10) + 7);
  assert.ok(p.stats().earnedMsat < 0, 'the node books the gift as a loss of its own');
});

test('changeMint: change comes from another mint, paid from the pool there; with none, from the paid mint', async (t) => {
  const { ln, payer } = await market(t);
  const other = await startMint({ lightning: ln, name: 'rogue' });
  t.after(() => other.stop());
  const otherPayer = await Payer.start(ln, other, 100);
  const p = await provider(t, [payer.mint.url], { knobs: { changeMint: other.url } });

  const fallback = await chat(p, await payer.token(10));
  assert.equal(getTokenMetadata(fallback.headers.get('x-cashu')!).mint, payer.mint.url, 'nothing at the other mint to pay with');

  await p.fund(await otherPayer.token(50));
  const res = await chat(p, await payer.token(10));
  const change = res.headers.get('x-cashu')!;
  assert.equal(getTokenMetadata(change).mint, other.url);
  assert.equal(await otherPayer.redeem(change), owedFrom(10), 'real ecash, of the right value, at the other mint');
});

test('endlessMs: a stream never reaches [DONE] and a JSON answer never closes; the change header came first', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { endlessMs: 2 } });
  const streamed = await chat(p, await payer.token(10), { stream: true });
  assert.ok(streamed.headers.get('x-cashu'));
  const s = await readUntil(streamed, (text) => text.split('data: ').length > 40);
  assert.equal(s.ended, false);
  assert.ok(!s.text.includes('[DONE]'));
  assert.match(s.text, /"usage": \{/, 'everything an honest stream says, then more');

  const plain = await chat(p, await payer.token(10));
  assert.equal(plain.headers.get('content-length'), null);
  const j = await readUntil(plain, (text) => text.length > 200);
  assert.equal(j.ended, false);
  assert.throws(() => JSON.parse(j.text));
  assert.equal(await payer.redeem(plain.headers.get('x-cashu')!), owedFrom(10));
});

test('hugeBodyBytes: the answer, padded to the size asked for, is still a whole valid answer', async (t) => {
  const { payer } = await market(t);
  const bytes = 2 * 1024 * 1024;
  const p = await provider(t, [payer.mint.url], { knobs: { hugeBodyBytes: bytes } });
  const plain = await chat(p, await payer.token(10));
  assert.equal(plain.headers.get('content-length'), String(bytes));
  const text = await plain.text();
  assert.equal(Buffer.byteLength(text), bytes);
  const body = JSON.parse(text) as ChatAnswer & { padding: string };
  assert.equal(body.padding.length > bytes - 2000, true);
  assert.equal(body.usage?.cost?.total_msats, honest.costMsat);

  const streamed = await chat(p, await payer.token(10), { stream: true });
  const sse = await streamed.text();
  assert.ok(Buffer.byteLength(sse) >= bytes);
  assert.ok(sse.endsWith('data: [DONE]\n'));
  const data = sse.split('\n').filter((l) => l.startsWith('data: {'));
  assert.ok(data.length > 30);
  for (const l of data) JSON.parse(l.slice(6));
});

test('wrongShape: valid JSON without choices, with choices as an object, usage as an array, or the answer in an array', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { wrongShape: 'no-choices' } });
  const none = (await (await chat(p, await payer.token(10))).json()) as ChatAnswer;
  assert.equal(none.choices, undefined);
  assert.equal(typeof none.usage?.prompt_tokens, 'number');

  p.knobs.wrongShape = 'choices-object';
  const obj = (await (await chat(p, await payer.token(10))).json()) as ChatAnswer;
  assert.ok(obj.choices && typeof obj.choices === 'object' && !Array.isArray(obj.choices));

  p.knobs.wrongShape = 'usage-array';
  const arr = (await (await chat(p, await payer.token(10))).json()) as ChatAnswer;
  assert.ok(Array.isArray(arr.choices));
  assert.ok(Array.isArray(arr.usage));

  p.knobs.wrongShape = 'array';
  const res = await chat(p, await payer.token(10));
  const wrapped = (await res.json()) as unknown[];
  assert.ok(Array.isArray(wrapped) && wrapped.length === 1);
  assert.equal(await payer.redeem(res.headers.get('x-cashu')!), owedFrom(10), 'the charge is honest');

  const streamed = await chat(p, await payer.token(10), { stream: true });
  const lines = (await streamed.text()).split('\n').filter((l) => l.startsWith('data: [{'));
  assert.ok(lines.length > 2, 'every stream chunk wrapped too');
});

test('badUsage: token counts and cost negative, 2^64, bare NaN or Infinity, or strings; the charge stays honest', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { badUsage: 'nan' } });
  const nan = await chat(p, await payer.token(10));
  const text = await nan.text();
  assert.match(text, /"prompt_tokens": NaN, "completion_tokens": NaN/);
  assert.match(text, /"total_msats": NaN/);
  assert.throws(() => JSON.parse(text), 'not JSON: what Python writes for float("nan")');
  assert.equal(nan.headers.get('x-routstr-cost-msats'), 'NaN');
  assert.equal(await payer.redeem(nan.headers.get('x-cashu')!), owedFrom(10));

  p.knobs.badUsage = 'infinity';
  assert.match(await (await chat(p, await payer.token(10))).text(), /"completion_tokens": Infinity/);

  const cases = { negative: -honest.promptTokens, huge: 2 ** 64, 'nan-string': 'NaN', string: String(honest.promptTokens) } as const;
  for (const [kind, want] of Object.entries(cases)) {
    p.knobs.badUsage = kind as keyof typeof cases;
    const res = await chat(p, await payer.token(10));
    const body = (await res.json()) as ChatAnswer;
    assert.equal(body.usage?.prompt_tokens, want, kind);
    assert.notEqual(typeof body.usage?.cost?.total_msats === 'number' && body.usage.cost.total_msats >= 0 && body.usage.cost.total_msats < 2 ** 53, true, kind);
  }
  assert.equal(pyDumps([NaN, Infinity, -Infinity, 1.5]), '[NaN, Infinity, -Infinity, 1.5]', "json.dumps' allow_nan");
});

test("impersonate: the announcement carries another provider's URL under the impostor's own key", async (t) => {
  const { payer } = await market(t);
  const relay = await startRelay();
  t.after(() => relay.stop());
  const victim = await provider(t, [payer.mint.url], { relays: [relay.url], noAnnounce: false });
  const impostor = await provider(t, [payer.mint.url], { name: 'mallory', relays: [relay.url], knobs: { impersonate: victim.url } });
  const published = await impostor.publish();
  assert.deepEqual(published.accepted, [relay.url]);
  const client = await Relay.connect(relay.url);
  t.after(() => client.close());
  const events = await new Promise<Event[]>((resolve) => {
    const found: Event[] = [];
    const sub = client.subscribe([{ kinds: [38421] }], { onevent: (e) => found.push(e), oneose: () => (sub.close(), resolve(found)) });
  });
  const claims = events.map((e) => [e.pubkey, e.tags.filter((tag) => tag[0] === 'u').map((tag) => tag[1])]);
  assert.deepEqual(claims.sort(), [[victim.pubkey, [victim.url]], [impostor.pubkey, [victim.url]]].sort());
  const info = (await (await fetch(`${victim.url}/v1/info`)).json()) as { npub: string };
  assert.equal(info.npub, npubEncode(victim.pubkey), 'the URL itself says whose it is');
});
