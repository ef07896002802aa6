// What reaches the client after the node re-serialises its upstream's answer (routstr-core
// v0.4.5 upstream/base.py under uvicorn), and what its change tokens look like.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getDecodedToken } from '@cashu/cashu-ts';
import { chat, expectedFor, market, provider, type ErrorBody } from './fixture.ts';

/** Read a body until the connection ends, keeping what arrived and whether it ended in an error. */
async function readAll(res: Response): Promise<{ text: string; failed: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, failed: false };
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return { text, failed: true };
  }
}

test('change and refund tokens carry no DLEQ proofs (send_token: include_dleq=False)', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const change = (await chat(p, await payer.token(10))).headers.get('x-cashu')!;
  const proofs = getDecodedToken(change, []).proofs;
  assert.ok(proofs.length > 0);
  assert.ok(proofs.every((pr) => pr.dleq === undefined), 'no dleq in the change');
  p.knobs.upstreamError = { status: 502 };
  const failed = (await (await chat(p, await payer.token(10))).json()) as ErrorBody;
  assert.ok(getDecodedToken(failed.error.refund_token!, []).proofs.every((pr) => pr.dleq === undefined), 'nor in a refund');
  assert.equal(await payer.redeem(change), 10 - Math.ceil(expectedFor('sim-a').costMsat / 1000), 'the payer can still swap it');
});

test("a Content-Length kept from a compact upstream body: the headers (change included) arrive, then the connection closes with no body", async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { staleContentLength: 'smaller' } });
  const res = await chat(p, await payer.token(10));
  assert.equal(res.status, 200);
  const change = res.headers.get('x-cashu');
  assert.ok(change, 'the change is in the headers, so it is not lost with the body');
  assert.ok(Number(res.headers.get('content-length')) > 0);
  const { text, failed } = await readAll(res);
  assert.ok(failed, 'the body read fails');
  assert.equal(text, '', 'uvicorn wrote none of a body longer than declared');
  assert.equal(await payer.redeem(change), 10 - Math.ceil(expectedFor('sim-a').costMsat / 1000));
});

test('a Content-Length kept from a pretty-printed upstream body: the whole body arrives, then the connection closes early', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url], { knobs: { staleContentLength: 'larger' } });
  const res = await chat(p, await payer.token(10));
  const declared = Number(res.headers.get('content-length'));
  const { text, failed } = await readAll(res);
  assert.ok(failed, 'fetch reports the premature close');
  assert.ok(Buffer.byteLength(text) < declared);
  const body = JSON.parse(text) as { usage: { cost: { total_msats: number } } };
  assert.equal(body.usage.cost.total_msats, expectedFor('sim-a').costMsat, 'a defensive reader still has the whole JSON');
  assert.ok(text.includes('", "'), "the node's body is json.dumps'd (\", \" separators)");
});
