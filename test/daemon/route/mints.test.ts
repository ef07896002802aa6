import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MintChooser } from '../../../daemon/route/mints.ts';
import type { Offer } from '../../../daemon/market-index.ts';

// Only the mints of an offer matter here.
const offer = (mints: string[]) => ({ mints }) as unknown as Offer;

test("the token is drawn from the accepted mint we hold the most at, written in the provider's own spelling", () => {
  const chooser = new MintChooser();
  const balances = new Map([
    ['https://mint-a.example', 50],
    ['https://mint-b.example', 200],
  ]);
  // the provider spells mint-b with a trailing slash and capitals: a node compares exact strings
  assert.equal(chooser.pick(offer(['https://mint-a.example', 'https://Mint-B.example/']), 10_000, balances), 'https://Mint-B.example/');
  assert.equal(chooser.key('https://Mint-B.example/'), 'https://mint-b.example');
});

test('a mint without enough for the token and its input fee is passed over for one with enough', () => {
  const chooser = new MintChooser();
  const balances = new Map([
    ['https://mint-a.example', 10],
    ['https://mint-b.example', 11],
  ]);
  const fee = (mint: string) => (mint === 'https://mint-b.example' ? 2 : 0);
  // 10 sat token: mint-b holds 11 but needs 10 + 2 fee; mint-a holds exactly 10 with no fee
  assert.equal(chooser.pick(offer(['https://mint-a.example', 'https://mint-b.example']), 10_000, balances, fee), 'https://mint-a.example');
});

test('a provider is skipped as "no common mint" or "insufficient balance", telling which', () => {
  const chooser = new MintChooser();
  const balances = new Map([['https://mint-a.example', 5]]);
  assert.equal(chooser.pick(offer(['https://elsewhere.example', 'not a url']), 1_000, balances), 0);
  assert.equal(chooser.pick(offer(['https://mint-a.example']), 5_001, balances), 1);
  assert.equal(chooser.key('not a url'), null);
});
