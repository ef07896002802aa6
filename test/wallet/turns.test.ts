import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnQueue } from '../../wallet/turns.ts';

test('a payment\'s split waits for at most one slice of a background refill\'s arithmetic, not for all of it', async () => {
  const cpu = new TurnQueue();
  const order: string[] = [];
  // A refill: 5 slices, each queueing the next when it ends (as swapPlain does).
  const refill = (async () => {
    for (let i = 1; i <= 5; i++) await cpu.run(false, () => order.push(`refill ${i}`));
  })();
  await new Promise((r) => setImmediate(r)); // refill 1 has run
  const payment = (async () => {
    for (let i = 1; i <= 2; i++) await cpu.run(true, () => order.push(`payment ${i}`));
  })();
  await Promise.all([refill, payment]);
  assert.deepEqual(order, ['refill 1', 'payment 1', 'payment 2', 'refill 2', 'refill 3', 'refill 4', 'refill 5']);
});

test('each slice runs in a turn of its own (the thread answers its port between them); same-priority work takes turns', async () => {
  const cpu = new TurnQueue();
  const order: string[] = [];
  const a = (async () => { for (let i = 1; i <= 3; i++) await cpu.run(false, () => order.push(`a${i}`)); })();
  const b = (async () => { for (let i = 1; i <= 3; i++) await cpu.run(false, () => order.push(`b${i}`)); })();
  setImmediate(() => order.push('port'));
  await Promise.all([a, b]);
  assert.deepEqual(order.filter((o) => o !== 'port'), ['a1', 'b1', 'a2', 'b2', 'a3', 'b3']);
  assert.ok(order.indexOf('port') <= 2, order.join(' '));
  assert.deepEqual(cpu.size, { urgent: 0, rest: 0 });
});

test('a slice that throws (or rejects) fails its own caller only', async () => {
  const cpu = new TurnQueue();
  await assert.rejects(cpu.run(true, () => { throw new Error('DLEQ verification failed'); }), /DLEQ/);
  await assert.rejects(cpu.run(false, () => Promise.reject(new Error('refused'))), /refused/);
  assert.equal(await cpu.run(false, () => 42), 42);
});

test('waiters that only pass go one per turn, behind the work already waiting', async () => {
  const turns = new TurnQueue();
  const order: string[] = [];
  const work = turns.run(false, () => order.push('work'));
  const waiters = [1, 2].map((i) => turns.pass().then(() => order.push(`waiter ${i}`)));
  setImmediate(() => order.push('other'));
  await Promise.all([work, ...waiters]);
  assert.deepEqual(order.filter((o) => o !== 'other'), ['work', 'waiter 1', 'waiter 2']);
  assert.ok(order.indexOf('other') <= 1, order.join(' '));
});
