import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  msat, msatToSatCeil, msatToSatFloor, sat, satToMsat, satToUnit, unitToMsat, unitToSatCeil, unitToSatFloor, UnitError,
  type Msat, type Sat,
} from '../../protocol/units.ts';

test('msat round down to the sats a credit is worth, and up to the sats that cover a charge', () => {
  assert.equal(msatToSatFloor(30_500), 30);
  assert.equal(msatToSatCeil(30_500), 31);
  assert.equal(msatToSatFloor(30_000), 30);
  assert.equal(msatToSatCeil(30_000), 30);
  assert.equal(msatToSatFloor(999), 0);
  assert.equal(msatToSatCeil(1), 1);
  assert.equal(msatToSatFloor(-1), -1, 'towards -infinity');
  assert.equal(msatToSatCeil(-1999), -1, 'towards +infinity');
});

test('the roundings are exact for every safe integer, where float division is not', () => {
  const big = Number.MAX_SAFE_INTEGER - 1; // 9007199254740990
  assert.equal(msatToSatFloor(big), 9_007_199_254_740);
  assert.equal(msatToSatCeil(big), 9_007_199_254_741);
  fc.assert(fc.property(fc.maxSafeInteger(), (m) => {
    const q = BigInt(m) / 1000n;
    const r = BigInt(m) % 1000n;
    const floor = r < 0n ? q - 1n : q;
    const ceil = r > 0n ? q + 1n : q;
    assert.equal(BigInt(msatToSatFloor(m)), floor);
    assert.equal(BigInt(msatToSatCeil(m)), ceil);
  }));
});

test('an amount that is not a whole number, or in a unit we do not hold, is refused', () => {
  assert.throws(() => sat(1.5), UnitError);
  assert.throws(() => msat(Number.NaN), UnitError);
  assert.throws(() => msatToSatFloor(0.5), UnitError);
  assert.throws(() => satToMsat(Number.MAX_SAFE_INTEGER), UnitError, 'overflows as msat');
  assert.throws(() => unitToSatFloor(5, 'usd'), UnitError);
});

test('amounts in a Cashu unit convert to sat and msat with the rounding in the name', () => {
  assert.equal(unitToSatFloor(1999, 'msat'), 1);
  assert.equal(unitToSatCeil(1001, 'msat'), 2);
  assert.equal(unitToSatFloor(7, 'sat'), 7);
  assert.equal(unitToMsat(7, 'sat'), 7000);
  assert.equal(unitToMsat(7, 'msat'), 7);
  assert.equal(satToUnit(3, 'msat'), 3000);
  assert.equal(satToUnit(3, 'sat'), 3);
});

test('a sat amount where msat belong fails the type check', () => {
  const s: Sat = sat(5);
  const m: Msat = satToMsat(s);
  // @ts-expect-error: sats are not msat
  msatToSatFloor(s);
  // @ts-expect-error: msat are not sats
  satToMsat(m);
  // @ts-expect-error: a plain number is not a Sat until checked
  const unchecked: Sat = 5;
  void unchecked;
  assert.equal(msatToSatCeil(m), 5);
});
