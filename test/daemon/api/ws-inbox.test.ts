// The inbox spreads a burst of client messages over turns of the event loop, keeps each
// connection's messages in order, and pushes back on a connection that floods it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inbox, type InboxOwner } from '../../../daemon/api/ws-inbox.ts';

const turn = () => new Promise<void>((r) => setImmediate(r));

async function handledAll(inbox: Inbox): Promise<void> {
  for (let turns = 0; inbox.size > 0; turns++) {
    assert.ok(turns < 100, 'the inbox stopped handling messages');
    await turn();
  }
}

class Owner implements InboxOwner {
  paused = 0;
  resumed = 0;
  pause(): void {
    this.paused++;
  }
  resume(): void {
    this.resumed++;
  }
}

test('a burst of messages is handled a slice per turn, each connection in order', async () => {
  let now = 0;
  const inbox = new Inbox({ sliceMs: 5, maxPerTurn: 100, now: () => now });
  const [a, b] = [new Owner(), new Owner()];
  const handled: string[] = [];
  for (let i = 0; i < 10; i++) {
    inbox.push(a, () => { now += 1; handled.push(`a${i}`); });
    inbox.push(b, () => { now += 1; handled.push(`b${i}`); });
  }
  assert.equal(handled.length, 0, 'nothing runs inside the read that queued it');
  await turn();
  assert.equal(handled.length, 5, 'one slice: 5 ms of 1 ms messages');
  await handledAll(inbox);
  assert.deepEqual(handled.filter((h) => h.startsWith('a')), Array.from({ length: 10 }, (_, i) => `a${i}`));
  assert.deepEqual(handled.filter((h) => h.startsWith('b')), Array.from({ length: 10 }, (_, i) => `b${i}`));
  assert.equal(handled.length, 20);
});

test('a slice ends after maxPerTurn messages however cheap they look: what they start runs on after the slice', async () => {
  const inbox = new Inbox({ sliceMs: 5, maxPerTurn: 8, now: () => 0 });
  const a = new Owner();
  let handled = 0;
  for (let i = 0; i < 20; i++) inbox.push(a, () => void handled++);
  await turn();
  assert.equal(handled, 8);
  await turn();
  assert.equal(handled, 16);
  await handledAll(inbox);
  assert.equal(handled, 20);
});

test('a connection with too long a backlog is paused until it is handled; the others are not', async () => {
  const inbox = new Inbox({ maxQueuedPerConnection: 3 });
  const [flood, quiet] = [new Owner(), new Owner()];
  for (let i = 0; i < 6; i++) inbox.push(flood, () => {});
  inbox.push(quiet, () => {});
  assert.deepEqual([flood.paused, flood.resumed, quiet.paused], [1, 0, 0]);
  await handledAll(inbox);
  assert.deepEqual([flood.paused, flood.resumed], [1, 1]);
});

test("a message that throws is reported and the next ones still run; a closed connection's backlog is dropped", async () => {
  const errors: unknown[] = [];
  const inbox = new Inbox({ onError: (e) => errors.push(e) });
  const [gone, live] = [new Owner(), new Owner()];
  const handled: string[] = [];
  inbox.push(live, () => { throw new Error('bug'); });
  inbox.push(gone, () => handled.push('gone'));
  inbox.push(live, () => handled.push('live'));
  inbox.drop(gone);
  await handledAll(inbox);
  assert.deepEqual(handled, ['live']);
  assert.equal((errors[0] as Error).message, 'bug');
});
