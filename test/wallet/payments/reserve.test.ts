import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countByAmount, defaultReserve, DemandMeter, demandTargets, fillDenominations, needsRefill, planRefill, Reserve, reserveDeficit, type ReserveConfig } from '../../../wallet/payments/reserve.ts';
import type { StoredProof } from '../../../wallet/store.ts';
import { InlineSwapEngine } from '../../../wallet/swap/engine.ts';
import { Payments } from '../../../wallet/payments/index.ts';
import { countReads } from '../store-reads.ts';

let n = 0;
const proof = (amount: number, keysetId = 'k'): StoredProof => ({
  secret: `s${n++}`, mint: 'm', unit: 'sat', keysetId, amount, C: '02', dleq: null, witness: null, p2pkE: null,
  state: 'unspent', reasonKind: null, reasonRef: null, source: 'test', createdAt: 0,
});
const cfg: ReserveConfig = { targets: new Map([[1, 2], [2, 2], [4, 2]]), minCount: 1 };
const free = () => 0;

test('the reserve knows which small denominations are missing and when to refill', () => {
  const proofs = [proof(1), proof(2), proof(2), proof(4), proof(4), proof(64)];
  assert.deepEqual(reserveDeficit(countByAmount(proofs), cfg), [1]);
  assert.equal(needsRefill(countByAmount(proofs), cfg), false);
  assert.equal(needsRefill(countByAmount([proof(2), proof(4)]), cfg), true);
  assert.deepEqual(defaultReserve(8, 4).targets, new Map([[1, 4], [2, 4], [4, 4], [8, 4]]));
  assert.equal(defaultReserve(8, 4).minCount, 2);
});

test('a refill swaps one surplus proof into the missing denominations, keeping the reserve', () => {
  const big = proof(64);
  const plan = planRefill([proof(4), proof(4), big], cfg, free);
  assert.deepEqual(plan?.inputs, [big]);
  assert.deepEqual(plan?.denominations, [1, 1, 2, 2]);
  assert.equal(planRefill([proof(1), proof(1), proof(2), proof(2), proof(4), proof(4), proof(64)], cfg, free), null, 'nothing missing');
});

test('a refill pays the input fee out of what it splits', () => {
  const plan = planRefill([proof(8)], cfg, () => 1000);
  assert.deepEqual(plan?.denominations, [1, 1, 2, 2], '8 - 1 sat fee = 7 >= 6 wanted');
});

test('a token that cannot be made offline gets its exact denominations first', () => {
  const plan = planRefill([proof(1), proof(1), proof(2), proof(2), proof(4), proof(4), proof(32)], cfg, free, [16, 8, 1]);
  assert.deepEqual(plan?.denominations.slice(0, 3), [16, 8, 1]);
  assert.equal(planRefill([proof(1), proof(2)], cfg, free, [16]), null, 'not enough money');
});

test('a wallet smaller than its reserve breaks its largest proof into the missing small ones', () => {
  // Both proofs are within the reserve's targets, so neither is surplus.
  const plan = planRefill([proof(4), proof(2)], cfg, free);
  assert.equal(plan?.inputs[0].amount, 4);
  assert.deepEqual(plan?.denominations, [1, 1, 2]);
  assert.equal(planRefill([proof(1)], cfg, free), null, 'nothing smaller to break it into');
});

test('change fills missing denominations smallest first, within its amount', () => {
  assert.deepEqual(fillDenominations(5, [1, 2, 2, 4]), [1, 2, 2]);
  assert.deepEqual(fillDenominations(0, [1]), []);
});

test('the reserve grows to the demand it sees: a denomination taken 20 times a second keeps ~4 s of it', () => {
  const meter = new DemandMeter(10_000);
  // 20 tokens a second for 30 s, each made of a 2 and a 1.
  for (let t = 0; t <= 30_000; t += 50) meter.note([2, 1], t);
  const now = 30_000;
  assert.ok(Math.abs(meter.perSecond(2, now) - 20) < 1.5, `measured ${meter.perSecond(2, now)} per second`);
  const base = defaultReserve(8, 6, { horizonS: 4, maxCount: 400 });
  const cfg = demandTargets(base, (d) => meter.perSecond(d, now));
  assert.ok(Math.abs(cfg.targets.get(2)! - 80) <= 6, `target for 2 sat: ${cfg.targets.get(2)}`);
  assert.equal(cfg.targets.get(4), 6, 'untouched denominations keep their floor');
  // Half the target is the refill threshold: 50 twos is plenty for a fixed reserve, too few now.
  assert.equal(needsRefill(new Map([[1, 80], [2, 50], [4, 6], [8, 6]]), cfg), false);
  assert.equal(needsRefill(new Map([[1, 80], [2, 30], [4, 6], [8, 6]]), cfg), true);
  // A minute of quiet and the demand has decayed back to the floor.
  assert.equal(demandTargets(base, (d) => meter.perSecond(d, now + 60_000)).targets.get(2), 6);
  assert.equal(demandTargets({ ...base, maxCount: 50 }, (d) => meter.perSecond(d, now)).targets.get(2), 50, 'capped');
  // Change bringing back a 1-sat proof with every request: no refill needs to make 1s.
  const net = new DemandMeter(10_000);
  for (let t = 0; t <= 30_000; t += 50) {
    net.note([2, 1], t);
    net.note([1], t, -1);
  }
  const withChange = demandTargets(base, (d) => net.perSecond(d, now));
  assert.equal(withChange.targets.get(1), 6, 'what comes back by itself is not demand');
  assert.ok(withChange.targets.get(2)! > 70);
});

test('a refill makes at most maxOutputs proofs, shared among the emptiest denominations', () => {
  const cfg = { targets: new Map([[1, 100], [2, 100], [4, 6]]), minCount: 3, maxOutputs: 20 };
  const deficit = reserveDeficit(new Map([[1, 90], [2, 0], [4, 0]]), cfg);
  assert.equal(deficit.length, 20);
  assert.equal(deficit.filter((d) => d === 1).length, 0, 'the nearly full one waits');
  assert.ok(deficit.filter((d) => d === 2).length >= 15, 'the emptiest gets most');
  assert.ok(deficit.filter((d) => d === 4).length >= 1, 'every empty one gets some');
  const plan = planRefill([proof(1024)], cfg, free);
  assert.ok(plan && plan.denominations.length <= 20 + 10, 'the outputs stay bounded (the rest is split the default way)');
});

test('against a mint: after a run of payments, the refills stock ~4 s of what they take (as measured so far), above the fixed floor', async (t) => {
  const { paymentsWorld, take } = await import('./fixture.ts');
  {
    const horizonS = 4;
    const w = await paymentsWorld(t, { fundSat: 4000, payments: { reserve: defaultReserve(256, 6, { horizonS }) } });
    let now = 1_000_000;
    (w.ctx as { clock: () => number }).clock = () => now;
    await w.payments.reserve.refill(w.mint.url); // the floor: 6 of each
    // 3-sat tokens (2 + 1), 20 a second for 2 s.
    for (let i = 0; i < 40; i++, now += 50) await take(w.payments, w.mint.url, 3, `p${horizonS}-${i}`);
    for (let i = 0; i < 5 && (await w.payments.reserve.refill(w.mint.url)); i++);
    const twos = w.payments.reserve.counts(w.mint.url).get(2) ?? 0;
    // The demand read so far (a 10 s average: 2 s of payments read as a fraction of their rate)
    // sets a target above the floor, and the refills stock up to it.
    const target = w.payments.reserve.configFor(w.mint.url).targets.get(2)!;
    assert.ok(target >= 8, `target ${target}, above the floor of 6 a fixed reserve keeps (the pure tests above)`);
    assert.ok(twos >= target, `demand-sized: ${twos} two-sat proofs after the refills, target ${target}`);
  }
});

test('payments released by one swap take their turns on the event loop one at a time, not all in one', async () => {
  const reserve = new Reserve({ clock: Date.now } as never, { on() {} } as never);
  const order: string[] = [];
  let release!: () => void;
  const first = reserve.exclusive('m', () => new Promise<void>((r) => (release = r)));
  const waiters = [1, 2, 3].map((i) => reserve.exclusive('m', async () => void order.push(`waiter ${i}`)));
  await new Promise((r) => setImmediate(r));
  release();
  await first;
  // Something else the loop has to do, queued after the swap ended: it runs between the waiters.
  setImmediate(() => order.push('other work'));
  await Promise.all(waiters);
  // (Without the turns, all three would run before it, in the swap's own turn.)
  const other = order.indexOf('other work');
  assert.ok(other >= 0 && other <= 1, order.join(', '));
  assert.deepEqual(order.filter((o) => o !== 'other work'), ['waiter 1', 'waiter 2', 'waiter 3'], 'in order');
});

test('payments waiting for a split to end resume one per turn of the event loop, in order', async () => {
  const reserve = new Reserve({ clock: Date.now } as never, { on() {} } as never);
  const order: string[] = [];
  let release!: () => void;
  const split = reserve.exclusive('m', () => new Promise<void>((r) => (release = r)));
  const waiters = [1, 2, 3, 4].map((i) => reserve.splitsDone('m').then((waited) => void order.push(`waiter ${i} ${waited}`)));
  await new Promise((r) => setImmediate(r));
  release();
  await split;
  setImmediate(() => order.push('other work'));
  await Promise.all(waiters);
  // (Woken by the same split, all four would run in its turn, before anything else.)
  const other = order.indexOf('other work');
  assert.ok(other >= 0 && other <= 1, order.join(', '));
  assert.deepEqual(order.filter((o) => o !== 'other work'), ['waiter 1 true', 'waiter 2 true', 'waiter 3 true', 'waiter 4 true']);
  assert.equal(await reserve.splitsDone('m'), false, 'no split running: no wait');
});

test('a payment that arrives while a refill holds the largest proof in its swap waits for it instead of failing for want of funds', async (t) => {
  const { paymentsWorld, take } = await import('./fixture.ts');
  const w = await paymentsWorld(t, { fundSat: 5000 }); // 4096 + 512 + 256 + 128 + 8
  const unspent = () => w.ctx.store.selectUnspent(w.mint.url, 'sat').reduce((a, p) => a + p.amount, 0);
  const refill = w.payments.reserve.refill(w.mint.url);
  while (unspent() >= 1000) await new Promise((r) => setImmediate(r)); // the 4096 is in the swap now
  const taken = await take(w.payments, w.mint.url, 1000, 'during-refill');
  assert.equal(taken.amountSat, 1000);
  await refill;
});

test('a payment short of a denomination splits beside a background refill still at the mint, instead of waiting for it', { timeout: 30_000 }, async (t) => {
  const { paymentsWorld, take, assertBooksBalance } = await import('./fixture.ts');
  const w = await paymentsWorld(t, { fundSat: 1000 }); // 512 + 256 + 128 + 64 + 32 + 8: no 1 or 2
  // The refill's mint call is held here until the test lets it go; a payment's split (urgent) is not.
  let reached!: () => void;
  const atGate = new Promise<void>((r) => (reached = r));
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const inline = new InlineSwapEngine();
  const engine = Object.assign(Object.create(inline) as InlineSwapEngine, {
    async complete(req: Parameters<InlineSwapEngine['complete']>[0]) {
      if (!req.urgent) {
        reached();
        await gate;
      }
      return inline.complete(req);
    },
  });
  const payments = new Payments(w.ctx, { fetch, autoRefill: false, engine });
  t.after(() => payments.stop());
  const refill = payments.reserve.refill(w.mint.url);
  await atGate; // its inputs are pending, its swap is at the mint
  const taken = await take(payments, w.mint.url, 3, 'beside-refill'); // would wait for the gate before
  assert.equal(taken.amountSat, 3);
  open();
  assert.equal((await refill)?.status, 'done');
  await assertBooksBalance(w.ctx);
});

test('a refill neither reads every unspent proof whole nor makes the next take read the unspent coins again', async (t) => {
  const { paymentsWorld, take, assertBooksBalance } = await import('./fixture.ts');
  const w = await paymentsWorld(t, { fundSat: 5000 }); // 4096 + 512 + 256 + 128 + 8: the reserve's small denominations are missing
  const wholeReads = countReads(w.ctx.store, 'unspent');
  const coinReads = countReads(w.ctx.store, 'coins');
  await take(w.payments, w.mint.url, 8, 'before'); // the coins are read once and kept
  const [whole0, coins0] = [wholeReads(), coinReads()];
  assert.equal((await w.payments.reserve.refill(w.mint.url))?.status, 'done');
  for (let i = 0; i < 3; i++) await take(w.payments, w.mint.url, 3, `after-${i}`);
  assert.equal(wholeReads() - whole0, 0, 'the refill planned from the coins in memory and read only its inputs whole');
  assert.equal(coinReads() - coins0, 0, 'its inputs leaving and its outputs arriving were followed in memory');
  const truth = w.ctx.store.selectUnspent(w.mint.url, 'sat').map((p) => p.secret).sort();
  assert.deepEqual(w.ctx.store.unspentCoins(w.mint.url, 'sat').coins.map((c) => c.secret).sort(), truth, 'and the coins in memory are the table\'s');
  await assertBooksBalance(w.ctx);
});
