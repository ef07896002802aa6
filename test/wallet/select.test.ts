import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectOffline, selectIncluding, inputFeeSat, splitAmount, defaultPolicy, EXACT_ONLY, type Coin, type SelectPolicy } from '../../wallet/select.ts';
import { rng } from '../rng.ts';


function randomCoins(rand: () => number, count: number, keysets: string[], maxExp: number): Coin[] {
  const coins: Coin[] = [];
  for (let i = 0; i < count; i++) {
    coins.push({ secret: `s${i}`, keysetId: keysets[Math.floor(rand() * keysets.length)], amountSat: 2 ** Math.floor(rand() * (maxExp + 1)) });
  }
  return coins;
}

/** Every subset sum reachable with each count (brute force, small sets only). */
function bruteForce(coins: Coin[], target: number): { exists: boolean; minCount: number } {
  let minCount = Infinity;
  for (let mask = 1; mask < 1 << coins.length; mask++) {
    let sum = 0;
    let n = 0;
    for (let i = 0; i < coins.length; i++) if (mask & (1 << i)) { sum += coins[i].amountSat; n++; }
    if (sum === target && n < minCount) minCount = n;
  }
  return { exists: minCount !== Infinity, minCount };
}

function checkSelection(coins: Coin[], amountSat: number, fees: Map<string, number>, policy: SelectPolicy, seed: number) {
  const sel = selectOffline(coins, amountSat, fees, policy);
  if (!sel) return null;
  const where = `seed ${seed}, amount ${amountSat}`;
  const secrets = new Set(sel.coins.map((c) => c.secret));
  assert.equal(secrets.size, sel.coins.length, `a proof chosen twice (${where})`);
  for (const c of sel.coins) assert.ok(coins.includes(c), `chose a proof we do not hold (${where})`);
  assert.ok(sel.coins.every((c) => c.keysetId === sel.keysetId), `mixed keysets (${where})`);
  const sum = sel.coins.reduce((a, c) => a + c.amountSat, 0);
  assert.equal(sum, sel.totalSat, where);
  assert.equal(sel.feeSat, inputFeeSat(sel.coins.length, fees.get(sel.keysetId)!), where);
  assert.equal(sel.totalSat, amountSat + sel.feeSat + sel.overpaySat, where);
  assert.ok(sel.totalSat - sel.feeSat >= amountSat, `the provider would net less than asked (${where})`);
  if (!policy.allowOverpay) assert.equal(sel.overpaySat, 0, where);
  else assert.ok(sel.overpaySat <= policy.maxOverpaySat, where);
  return sel;
}

test('a token made offline always nets the provider at least the amount asked, from proofs we hold, each once', () => {
  for (let seed = 1; seed <= 400; seed++) {
    const rand = rng(seed);
    const keysets = ['00aa', '00bb', '00cc'].slice(0, 1 + Math.floor(rand() * 3));
    const fees = new Map(keysets.map((k, i) => [k, [0, 100, 1000][(i + seed) % 3]]));
    const coins = randomCoins(rand, 5 + Math.floor(rand() * 40), keysets, 9);
    const amount = 1 + Math.floor(rand() * 600);
    checkSelection(coins, amount, fees, EXACT_ONLY, seed);
    checkSelection(coins, amount, fees, defaultPolicy(amount), seed);
  }
});

test('with no input fee, exact selection is found whenever some subset adds up, using the fewest proofs', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = rng(seed * 7919);
    const coins = randomCoins(rand, 4 + Math.floor(rand() * 10), ['00aa'], 6);
    const amount = 1 + Math.floor(rand() * 120);
    const truth = bruteForce(coins, amount);
    const sel = checkSelection(coins, amount, new Map([['00aa', 0]]), EXACT_ONLY, seed);
    assert.equal(sel !== null, truth.exists, `seed ${seed}: exact match exists=${truth.exists}`);
    if (sel) assert.equal(sel.coins.length, truth.minCount, `seed ${seed}: not the fewest proofs`);
  }
});

test('a fee-charging keyset gets a token that also covers the input fee the provider will pay', () => {
  // 1000 ppk = 1 sat per input: 8 + 2 = 10 would net the provider 8. The cheapest token that
  // nets 10 is 8 + 4 = 12 (two inputs, 2 sat fee).
  const coins: Coin[] = [8, 4, 2, 1, 1].map((amountSat, i) => ({ secret: `s${i}`, keysetId: 'k', amountSat }));
  const sel = selectOffline(coins, 10, new Map([['k', 1000]]), EXACT_ONLY);
  assert.ok(sel);
  assert.equal(sel.feeSat, 2);
  assert.equal(sel.totalSat, 12);
  assert.equal(sel.overpaySat, 0);
  // 100 ppk: 3 inputs cost ceil(0.3) = 1 sat.
  const cheap = selectOffline(coins, 10, new Map([['k', 100]]), EXACT_ONLY);
  assert.equal(cheap?.totalSat, 11);
  assert.equal(cheap?.feeSat, 1);
});

test('when no exact token exists, a small overpayment is offered only if the policy allows it', () => {
  const coins: Coin[] = [{ secret: 'a', keysetId: 'k', amountSat: 16 }];
  const fees = new Map([['k', 0]]);
  assert.equal(selectOffline(coins, 14, fees, EXACT_ONLY), null);
  const over = selectOffline(coins, 14, fees, { allowOverpay: true, maxOverpaySat: 2 });
  assert.equal(over?.overpaySat, 2);
  assert.equal(selectOffline(coins, 13, fees, { allowOverpay: true, maxOverpaySat: 2 }), null, 'overpay of 3 exceeds the bound');
});

test('exact is preferred to overpayment when both are possible', () => {
  const coins: Coin[] = [
    { secret: 'big', keysetId: 'k', amountSat: 8 },
    { secret: 'a', keysetId: 'k', amountSat: 4 },
    { secret: 'b', keysetId: 'k', amountSat: 2 },
  ];
  const sel = selectOffline(coins, 6, new Map([['k', 0]]), { allowOverpay: true, maxOverpaySat: 4 });
  assert.deepEqual(sel?.coins.map((c) => c.secret).sort(), ['a', 'b']);
  assert.equal(sel?.overpaySat, 0);
});

test('proofs of a keyset whose fee is unknown are never used', () => {
  const coins: Coin[] = [{ secret: 'a', keysetId: 'unknown', amountSat: 4 }];
  assert.equal(selectOffline(coins, 4, new Map(), EXACT_ONLY), null);
});

test('the standard split is powers of two adding up to the amount', () => {
  assert.deepEqual(splitAmount(13), [8, 4, 1]);
  assert.deepEqual(splitAmount(0), []);
  for (let a = 1; a < 5000; a += 37) assert.equal(splitAmount(a).reduce((x, y) => x + y, 0), a);
  assert.throws(() => selectOffline([], 0, new Map(), EXACT_ONLY), RangeError);
});

test('a top-up token keeps every proof the provider saw and adds same-keyset coins to cover the amount and the whole token\'s fee', () => {
  const fees = new Map([['k1', 400], ['k2', 0]]);
  const kept: Coin[] = [{ secret: 'seen1', keysetId: 'k1', amountSat: 1 }, { secret: 'seen2', keysetId: 'k1', amountSat: 2 }];
  const coins: Coin[] = [8, 4, 2, 1, 1, 16].map((a, i) => ({ secret: `c${i}`, keysetId: 'k1', amountSat: a }))
    .concat([{ secret: 'other', keysetId: 'k2', amountSat: 11 }]);
  const sel = selectIncluding(kept, coins, 12, fees, EXACT_ONLY)!;
  assert.ok(sel);
  for (const k of kept) assert.ok(sel.coins.includes(k), 'kept coin in the token');
  assert.ok(sel.coins.every((c) => c.keysetId === 'k1'), 'one keyset per token');
  assert.equal(sel.totalSat, sel.coins.reduce((a, c) => a + c.amountSat, 0));
  assert.equal(sel.feeSat, inputFeeSat(sel.coins.length, 400));
  assert.equal(sel.totalSat, 12 + sel.feeSat + sel.overpaySat);
  assert.equal(sel.overpaySat, 0);
  // When the kept coins alone are worth more than asked, the overpayment is unavoidable and accepted.
  const over = selectIncluding([{ secret: 'big', keysetId: 'k2', amountSat: 32 }], coins, 5, fees, EXACT_ONLY)!;
  assert.deepEqual([over.coins.map((c) => c.secret), over.overpaySat], [['big'], 27]);
  // Nothing to keep: ordinary selection.
  assert.deepEqual(selectIncluding([], coins, 11, fees, EXACT_ONLY), selectOffline(coins, 11, fees, EXACT_ONLY));
  // Not enough of that keyset: null (the caller swaps).
  assert.equal(selectIncluding(kept, coins, 100, fees, EXACT_ONLY), null);
});

test('top-up selection is exact or within the overpay policy for random wallets (seeded)', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = rng(seed);
    const ppk = [0, 100, 600][seed % 3];
    const fees = new Map([['k', ppk]]);
    const all = randomCoins(rand, 14, ['k'], 6);
    const kept = all.slice(0, 1 + Math.floor(rand() * 3));
    const coins = all.slice(kept.length);
    const amountSat = 1 + Math.floor(rand() * 120);
    const policy = defaultPolicy(amountSat);
    const sel = selectIncluding(kept, coins, amountSat, fees, policy);
    if (!sel) continue;
    const where = `seed ${seed}`;
    for (const k of kept) assert.ok(sel.coins.includes(k), where);
    assert.equal(new Set(sel.coins).size, sel.coins.length, where);
    assert.equal(sel.totalSat, sel.coins.reduce((a, c) => a + c.amountSat, 0), where);
    assert.equal(sel.feeSat, inputFeeSat(sel.coins.length, ppk), where);
    assert.ok(sel.totalSat >= amountSat + sel.feeSat, where);
    const keptSat = kept.reduce((a, c) => a + c.amountSat, 0);
    if (keptSat < amountSat) assert.ok(sel.overpaySat <= policy.maxOverpaySat, where);
  }
});
