import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openRouting, routeControlHandlers, RouteConfigError } from '../../../daemon/route/index.ts';
import { MINT, gpt, storeMarket } from './fixture.ts';
import { Market } from '../../../daemon/market.ts';
import { openDatabase } from '../../../db/sqlite.ts';

test('routing is built from satroute.json: auto models, tuned breakers; a bad section is refused by name', async () => {
  const db = openDatabase(':memory:');
  storeMarket(db, [{ name: 'A', models: [gpt(0.00001, 0.00003, { id: 'small' })] }]);
  const market = new Market({ db, config: { relays: [], providers: [] }, autoSchedule: false });
  assert.throws(() => openRouting({ db, market, config: { routing: { breaker: { failureThreshold: 0 } } } }), (err: unknown) => err instanceof RouteConfigError && /breaker\.failureThreshold/.test(err.message));
  assert.throws(() => openRouting({ db, market, config: { auto: { minQuality: 'high' } } }), RouteConfigError);
  const routing = openRouting({ db, market, config: { auto: { minQuality: 1, quality: { small: 5 } }, routing: { breaker: { failureThreshold: 1 } } } });
  await routing.start();
  assert.equal(routing.tokenizer.loaded, true);
  const plan = routing.router.plan({ model: 'auto', body: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }, balances: new Map([[MINT, 100]]) });
  assert.equal(plan.attempts[0].model, 'small');
  assert.equal(plan.prompt.exact, true);
  routing.router.report(plan.attempts[0], { breaker: { kind: 'failure', scope: 'provider', error: 'refused' } });
  const handlers = routeControlHandlers(routing);
  assert.deepEqual((handlers['route.breakers']() as { state: string }[]).map((b) => b.state), ['open'], 'one failure opens it, as configured');
  assert.equal((handlers['route.health']() as Record<string, { breaker: { state: string } }>)['pk-A:d'].breaker.state, 'open');
  routing.stop();
  db.close();
});
