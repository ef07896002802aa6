import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { callDaemon, ControlCallError, DaemonNotRunningError, startControlServer } from '../../../daemon/control/server.ts';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-control-'));
}

test('a CLI call reaches the running daemon and gets its answer', async (t) => {
  const dir = tempDir();
  const server = await startControlServer(dir, { 'wallet.balance': () => ({ sat: 21 }), echo: (p: { x: number }) => p.x * 2 });
  t.after(() => server.close());
  assert.deepEqual(await callDaemon(dir, 'wallet.balance'), { sat: 21 });
  assert.equal(await callDaemon(dir, 'echo', { x: 4 }), 8);
  assert.equal(fs.statSync(server.path).mode & 0o777, 0o600, 'only the owner may talk to the daemon');
});

test('without a daemon the CLI is told so and can work in-process', async () => {
  const dir = tempDir();
  await assert.rejects(callDaemon(dir, 'wallet.balance'), DaemonNotRunningError);
  fs.writeFileSync(path.join(dir, 'control.sock'), ''); // a stale file left by a crash
  await assert.rejects(callDaemon(dir, 'wallet.balance'), DaemonNotRunningError);
});

test('a daemon error reaches the CLI as a message, and unknown methods are refused', async (t) => {
  const dir = tempDir();
  const server = await startControlServer(dir, {
    fail: () => {
      throw Object.assign(new Error('insufficient funds: have 3 sat, need 5 sat'), { code: 'insufficient_funds' });
    },
  });
  t.after(() => server.close());
  await assert.rejects(callDaemon(dir, 'fail'), (err: unknown) => err instanceof ControlCallError && err.message.includes('have 3 sat') && err.code === 'insufficient_funds');
  await assert.rejects(callDaemon(dir, 'constructor'), /unknown method/);
});

test('a second daemon on the same data directory is refused; a stale socket is replaced', async (t) => {
  const dir = tempDir();
  const first = await startControlServer(dir, {});
  await assert.rejects(startControlServer(dir, {}), /already running/);
  await first.close();
  fs.writeFileSync(path.join(dir, 'control.sock'), '');
  const second = await startControlServer(dir, { ping: () => 'pong' });
  t.after(() => second.close());
  assert.equal(await callDaemon(dir, 'ping'), 'pong');
});
