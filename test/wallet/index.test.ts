import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CashuWallet } from '../../wallet/index.ts';
import { world } from './world.ts';

test('stopping the wallet waits for a recovery pass that is still running', async (t) => {
  const { ctx, dir, mint } = await world(t);
  const wallet = new CashuWallet({ db: ctx.db, dataDir: dir, mints: [mint.url] });
  let release!: () => void;
  const started = new Promise<void>((resolveStarted) => {
    wallet.addRecoveryStep('slow', () => new Promise<void>((r) => { release = r; resolveStarted(); }));
  });
  let finished = false;
  const pass = wallet.recover().then(() => { finished = true; });
  await started;
  let stopped = false;
  const stopping = Promise.resolve(wallet.stop()).then(() => { stopped = true; });
  await new Promise((r) => setImmediate(r));
  assert.equal(stopped, false, 'stop() returned while the recovery pass was still running');
  release();
  await stopping;
  assert.equal(finished, true, 'the pass had finished when stop() resolved');
  await pass;
});
