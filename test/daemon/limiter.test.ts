import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter } from '../../daemon/limiter.ts';

test('no more than the limit run at once, and every task runs, in order of arrival', async () => {
  const limiter = new Limiter(3);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const gates: (() => void)[] = [];
  const tasks = Array.from({ length: 10 }, (_, i) =>
    limiter.run(async () => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      return i;
    }),
  );
  // release tasks one by one, while newcomers keep arriving
  const late: Promise<number>[] = [];
  for (let k = 0; k < 12; k++) {
    await new Promise((r) => setImmediate(r));
    gates.shift()?.();
    if (k < 2) late.push(limiter.run(async () => 100 + k));
  }
  assert.deepEqual(await Promise.all(tasks), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(await Promise.all(late), [100, 101]);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(most, 3);
  assert.equal(limiter.peak, 3);
});

test('a failing task frees its slot', async () => {
  const limiter = new Limiter(1);
  await assert.rejects(limiter.run(async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await limiter.run(async () => 'next'), 'next');
  assert.throws(() => new Limiter(0), RangeError);
});
