// Backpressure: a client that stops reading (its socket paused, as a stuck program's would be)
// never makes the daemon buffer without bound. Its stream is held back through the sink's
// `chunk` promise, then failed with a clear error; answers past the hard limit are refused
// request by request; subscription events are dropped and counted, not queued. The assertions
// are about what the daemon buffered and what the lifecycle saw, never wall-clock or RSS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, chat, startApi, type Msg } from './ws-fixture.ts';
import type { PaymentEvent } from '../../../daemon/requests/contract.ts';

const KiB = 1024;
const turn = () => new Promise<void>((r) => setImmediate(r));
const isEnd = (m: Msg) => m.type === 'done' || m.type === 'error';

test('a client that stops reading holds its stream back, then the stream fails with a clear error', async (t) => {
  const highWaterBytes = 64 * KiB;
  const chunkBytes = 32 * KiB;
  const h = await startApi(t, { limits: { highWaterBytes, hardLimitBytes: 1024 * KiB, stallTimeoutMs: 10_000 }, standIn: { chunkBytes } });
  const c = await Client.open(h);
  c.send(chat('flood', { chunks: 2_000 })); // 64 MB, if nothing held it back
  await c.next((m) => m.id === 'flood' && m.type === 'chunk');
  c.pauseReading();
  const seen = () => h.lifecycle.seen.get('flood')!;
  // Wait until the stream is held by a wait that the socket does not end by itself (the
  // kernel's buffers are full), then let the stall timeout pass.
  for (let quietTurns = 0; quietTurns < 5; ) {
    await h.lifecycle.until(() => seen().waiting);
    const sent = seen().chunksSent;
    await turn();
    quietTurns = seen().waiting && seen().chunksSent === sent ? quietTurns + 1 : 0;
  }
  h.timers.advance(10_000);
  await h.lifecycle.until(() => seen().settled);

  const s = seen();
  assert.ok(s.backpressure >= 1, 'the lifecycle was made to wait');
  assert.ok(s.chunksSent < 2_000, `held back after ${s.chunksSent} chunks`);
  const chunkMessageBytes = chunkBytes + 200;
  assert.ok(Math.max(...s.bufferedAfterChunk) <= highWaterBytes + chunkMessageBytes, `daemon buffered at most ${Math.max(...s.bufferedAfterChunk)} bytes`);
  assert.equal(s.aborted, true);
  assert.match((s.req.signal.reason as Error).message, /read nothing for 10 s/);
  assert.equal(h.api.stats().backpressureFailures, 1);

  c.resumeReading();
  const err = await c.next((m) => m.id === 'flood' && isEnd(m));
  assert.deepEqual({ type: err.type, code: err.code, request_id: err.request_id }, { type: 'error', code: 'canceled', request_id: s.requestId });
  assert.match(err.message as string, /client read nothing for 10 s/);
  assert.equal(c.of('flood').at(-1), err);
  assert.equal(c.of('flood').filter((m) => m.type === 'chunk').length, s.chunksSent);
  await c.sync(); // the connection lives
});

test('answers that would pile up past the hard limit fail their own requests, the rest arrive whole', async (t) => {
  const hardLimitBytes = 1024 * KiB;
  const responseBytes = 512 * KiB;
  const h = await startApi(t, { limits: { highWaterBytes: 64 * KiB, hardLimitBytes }, standIn: { responseBytes } });
  const c = await Client.open(h);
  c.pauseReading();
  const ids = Array.from({ length: 60 }, (_, i) => `big${i}`); // 30 MB of answers
  for (const id of ids) c.send(chat(id, { stream: false }));
  await h.lifecycle.until(() => h.lifecycle.seen.size === ids.length && [...h.lifecycle.seen.values()].every((s) => s.settled));
  const buffered = h.api.stats().bufferedBytes;
  assert.ok(buffered <= hardLimitBytes + responseBytes + 1024, `daemon buffered ${buffered} bytes`);
  const failures = h.api.stats().backpressureFailures;
  assert.ok(failures > 0 && failures < ids.length, `${failures} of ${ids.length} failed`);

  c.resumeReading();
  await Promise.all(ids.map((id) => c.next((m) => m.id === id && isEnd(m))));
  let failed = 0;
  for (const id of ids) {
    const types = c.of(id).map((m) => m.type);
    if (types.at(-1) === 'done') assert.deepEqual(types, ['accepted', 'response', 'done'], id);
    else {
      failed++;
      assert.deepEqual(types, ['accepted', 'error'], id);
      const err = c.of(id)[1];
      assert.equal(err.code, 'canceled');
      assert.match(err.message as string, /client is not reading its messages/);
      assert.equal(h.lifecycle.seen.get(id)!.aborted, true);
    }
  }
  assert.equal(failed, failures);
  await c.sync();
});

test('events for a subscriber that stops reading are dropped and counted, and it is told how many', async (t) => {
  const highWaterBytes = 64 * KiB;
  const h = await startApi(t, { limits: { highWaterBytes } });
  const c = await Client.open(h);
  c.send({ type: 'subscribe', topics: ['payments'] });
  await c.sync();
  c.pauseReading();
  const event = (i: number): PaymentEvent => ({
    topic: 'payments', request_id: `e${i}`, time: new Date(0).toISOString(), client: 'laptop', endpoint: '/v1/chat/completions',
    model: 'm'.repeat(2 * KiB), provider: 'alpha', status: 'succeeded', payment: 'xcashu', usage: null,
    cost: { sent_sats: 1, change_sats: 0, charged_msat: 1000, expected_msat: 1000, reported_msat: 1000 }, flags: [], attempts: 1, late: false,
  });
  let published = 0;
  let maxBuffered = 0;
  const publish = (n: number) => {
    for (let i = 0; i < n; i++) {
      h.events.publish(event(published++));
      maxBuffered = Math.max(maxBuffered, h.api.stats().bufferedBytes);
    }
  };
  // Publish until the kernel's buffers are full and the daemon's own stays over its mark.
  for (let rounds = 0; h.api.stats().bufferedBytes <= highWaterBytes; rounds++) {
    assert.ok(rounds < 10_000, "the daemon's buffer never filled");
    publish(50);
    await turn();
  }
  const droppedBefore = h.api.stats().droppedEvents;
  publish(200);
  assert.ok(maxBuffered <= highWaterBytes + 4 * KiB, `daemon buffered at most ${maxBuffered} bytes`);
  const dropped = h.api.stats().droppedEvents;
  assert.equal(dropped - droppedBefore, 200);

  c.resumeReading();
  let received = 0;
  let notified = 0;
  await c.next((m) => {
    if (m.type === 'event' && m.request_id !== undefined) received++;
    if (m.type === 'event' && m.dropped !== undefined) notified += m.dropped as number;
    return received + notified === published;
  });
  assert.equal(notified, dropped);
  const notice = c.messages.find((m) => m.dropped !== undefined)!;
  assert.deepEqual(Object.keys(notice).sort(), ['dropped', 'topic', 'type']);
  assert.equal(notice.topic, 'payments');
  // what did arrive arrived in order
  const order = c.messages.filter((m) => m.request_id !== undefined).map((m) => Number(String(m.request_id).slice(1)));
  assert.deepEqual(order, [...order].sort((a, b) => a - b));
  // and once it reads again, nothing more is dropped
  publish(10);
  await c.next((m) => m.request_id === `e${published - 1}`);
  assert.equal(h.api.stats().droppedEvents, dropped);
});
