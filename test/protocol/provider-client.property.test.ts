// Hostile input for a provider's /v1/info and /v1/models: whatever bytes and status come back,
// the client answers with typed values or a ProbeError, and every price it keeps - and every
// reservation and bill computed from it - is a safe non-negative integer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProbeError, ProviderClient } from '../../protocol/provider-client.ts';
import { reservationMsatFor, tokenCostMsat, type ModelPrice } from '../../protocol/pricing.ts';
import { MAX_REPORTED_TOKENS } from '../../protocol/cost.ts';
import { assertAsyncProperty } from '../property.ts';
import { bodyBytes, infoBodyArb, isSafeAmount, modelsBodyArb } from './arbitraries.ts';

const BASE = 'http://provider.test';
const statusArb = fc.oneof({ weight: 5, arbitrary: fc.constant(200) }, { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }) });

/** A client whose fetch answers every call with these bytes and this status. */
function clientAnswering(body: Uint8Array, status: number, o: { maxBytes?: number } = {}): ProviderClient {
  const fetch = (async () => new Response(status === 204 || status === 205 || status === 304 ? null : (body as unknown as BodyInit), { status })) as unknown as typeof globalThis.fetch;
  return new ProviderClient({ fetch, maxInfoBytes: o.maxBytes, maxModelsBytes: o.maxBytes, usdPerSat: 0.001 });
}

const MONEY_FIELDS = ['promptNmsat', 'completionNmsat', 'cacheReadNmsat', 'cacheWriteNmsat', 'requestMsat', 'maxCostMsat', 'maxPromptCostMsat', 'maxCompletionCostMsat'] as const;

function assertPrice(price: ModelPrice): void {
  for (const f of MONEY_FIELDS) assert.ok(isSafeAmount(price[f]), `${f} = ${price[f]}`);
  assert.ok(price.source === 'sats_pricing' || price.source === 'usd_pricing');
}

const reserveInput = fc.record({
  promptTokens: fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: undefined }),
  maxTokens: fc.option(fc.integer({ min: -1000, max: 100_000_000 }), { nil: undefined }),
});
const usageArb = fc.record({
  promptTokens: fc.integer({ min: 0, max: MAX_REPORTED_TOKENS }),
  completionTokens: fc.integer({ min: 0, max: MAX_REPORTED_TOKENS }),
  cacheReadTokens: fc.option(fc.integer({ min: 0, max: MAX_REPORTED_TOKENS }), { nil: undefined }),
  cacheWriteTokens: fc.option(fc.integer({ min: 0, max: MAX_REPORTED_TOKENS }), { nil: undefined }),
});

test('any /v1/models answer gives models with safe integer prices, reservations and bills, or a ProbeError', async () => {
  await assertAsyncProperty(
    fc.asyncProperty(bodyBytes(modelsBodyArb), statusArb, reserveInput, usageArb, async (body, status, input, usage) => {
      let models;
      try {
        models = await clientAnswering(body, status).models(BASE);
      } catch (err) {
        assert.ok(err instanceof ProbeError, `not a ProbeError: ${(err as Error)?.stack ?? err}`);
        return;
      }
      assert.ok(status >= 200 && status < 300, 'only a 2xx gives models');
      const ids = new Set<string>();
      for (const m of models) {
        assert.ok(typeof m.id === 'string' && m.id.length >= 1 && m.id.length <= 512);
        assert.ok(!ids.has(m.id), 'one entry per model id');
        ids.add(m.id);
        assert.ok(m.aliasIds.every((a) => typeof a === 'string' && a.length >= 1 && a !== m.id));
        assert.ok(m.contextLength === undefined || isSafeAmount(m.contextLength));
        if (m.price === null) {
          assert.equal(m.reserve, null, 'no reservation terms without a price');
          continue;
        }
        assertPrice(m.price);
        const reserved = reservationMsatFor(m.reserve, input, m.price.maxCostMsat);
        assert.ok(isSafeAmount(reserved) && reserved >= 1, `reservation ${reserved} msat`);
        const bill = tokenCostMsat(usage, m.price);
        assert.ok(isSafeAmount(bill), `bill ${bill} msat`);
      }
    }),
    { seed: 1311, numRuns: 200 },
  );
});

test('any /v1/info answer gives bounded strings and mint URLs, or a ProbeError', async () => {
  await assertAsyncProperty(
    fc.asyncProperty(bodyBytes(infoBodyArb), statusArb, async (body, status) => {
      let info;
      try {
        info = await clientAnswering(body, status).info(BASE);
      } catch (err) {
        assert.ok(err instanceof ProbeError, `not a ProbeError: ${(err as Error)?.stack ?? err}`);
        return;
      }
      for (const v of [info.name, info.description, info.version, info.npub, info.httpUrl, info.onionUrl]) assert.ok(v === undefined || (typeof v === 'string' && v.length <= 4096));
      assert.ok(info.mints.length <= 100 && new Set(info.mints).size === info.mints.length);
      for (const m of info.mints) assert.match(m, /^\s*(https?:\/\/)?[^\s]/i);
    }),
    { seed: 1312, numRuns: 300 },
  );
});

test('a body over the size limit is refused as too_large, whatever it holds', async () => {
  await assertAsyncProperty(
    fc.asyncProperty(fc.uint8Array({ minLength: 65, maxLength: 400 }), fc.integer({ min: 1, max: 64 }), async (body, limit) => {
      const client = clientAnswering(body, 200, { maxBytes: limit });
      for (const call of [client.models(BASE), client.info(BASE)]) {
        await assert.rejects(call, (err: unknown) => err instanceof ProbeError && err.reason === 'too_large');
      }
    }),
    { seed: 1313, numRuns: 50 },
  );
});

test('whatever fetch throws, the probe fails with a ProbeError', async () => {
  await assertAsyncProperty(
    fc.asyncProperty(fc.anything(), async (thrown) => {
      const client = new ProviderClient({ fetch: (async () => { throw thrown; }) as unknown as typeof fetch });
      await assert.rejects(client.models(BASE), (err: unknown) => err instanceof ProbeError && err.reason === 'unreachable');
    }),
    { seed: 1314, numRuns: 100 },
  );
});
