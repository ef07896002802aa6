// `satroute demo` as a user runs it (its own process through bin/satroute.js): the whole thing
// in a local market, ending with the money accounted for; and `--serve`, which keeps it running.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { bin, root, satroute } from './run.ts';

function demo(t: TestContext, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['SATROUTE_DATA_DIR', 'SATROUTE_LISTEN', 'SATROUTE_RELAYS', 'SATROUTE_MINTS', 'SATROUTE_LOG_LEVEL']) delete env[k];
  const child = spawn(process.execPath, [bin, 'demo', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => void (child.exitCode === null && child.kill('SIGKILL')));
  return { child, exited, out: () => stdout, err: () => stderr };
}

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return false;
  } catch {
    return true;
  }
}

test('the demo routes and pays every request, fails over, opens a breaker, and ends with every sat accounted for', { timeout: 180_000 }, async (t) => {
  const run = demo(t);
  const code = await run.exited;
  const stdout = run.out();
  assert.equal(code, 0, `exit ${code}\n${stdout.slice(-3000)}\n${run.err()}`);

  const lines = stdout.trimEnd().split('\n');
  const last = JSON.parse(lines.at(-1)!) as Record<string, number>;
  assert.deepEqual(Object.keys(last), ['requests', 'succeeded', 'funded_sats', 'spent_sats', 'balance_sats', 'unaccounted_sats']);
  assert.equal(last.unaccounted_sats, 0);
  assert.ok(last.requests >= 10, `${last.requests} requests`);
  assert.equal(last.succeeded, last.requests);
  assert.equal(last.funded_sats, 30_000, 'what the NWC wallet paid for the two invoices');
  assert.ok(last.spent_sats > 0 && last.spent_sats + last.balance_sats <= last.funded_sats, JSON.stringify(last));

  // What the user is shown on the way.
  assert.match(stdout, /\$ satroute wallet fund 20000 --mint http:\/\/127\.0\.0\.1:\d+\n\s+Invoice for 20,000 sat/);
  assert.match(stdout, /█/, 'the invoice as a QR code');
  assert.doesNotMatch(stdout, /secret=(?!<hidden>)/, 'the NWC secret is never printed');
  assert.match(stdout, /\[providers event\] alpha: breaker open/);
  assert.match(stdout, /alpha \(502, refunded\) -> echo succeeded/);
  assert.match(stdout, /\$ satroute audit verify\n(.*\n)*\s+OK: every sat is accounted for\./);

  // Nothing left: the data directory removed, the daemon's port closed.
  const dataDir = /data directory (\S+)/.exec(stdout)?.[1];
  assert.ok(dataDir?.includes('satroute-demo-'));
  assert.equal(fs.existsSync(dataDir!), false);
  const http = /HTTP (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stdout)?.[1];
  assert.ok(http);
  assert.ok(await refused(`${http}/healthz`), 'the daemon is gone with the demo');
});

test('demo --serve prints its JSON line first, serves requests and `satroute audit` meanwhile, and stops cleanly on SIGTERM', { timeout: 180_000 }, async (t) => {
  const run = demo(t, '--serve');
  const first = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: run.child.stdout }).once('line', resolve);
    void run.exited.then((code) => reject(new Error(`demo --serve exited with ${code}: ${run.err()}`)));
  });
  const s = JSON.parse(first) as { http: string; ws: string; key: string; data_dir: string; relay: string; mints: string[] };
  assert.deepEqual(Object.keys(s), ['http', 'ws', 'key', 'data_dir', 'relay', 'mints']);
  assert.match(s.ws, /^ws:\/\/127\.0\.0\.1:\d+\/v1\/ws$/);
  assert.match(s.relay, /^ws:\/\//);
  assert.equal(s.mints.length, 2);

  const auth = { authorization: `Bearer ${s.key}` };
  const status = await fetch(`${s.http}/admin/status`, { headers: auth });
  assert.equal(status.status, 200, 'the key has the admin scope');
  assert.equal((await status.json()).wallet.totalSat, 30_000, 'funded over NWC before the line was printed');
  const chat = await fetch(`${s.http}/v1/chat/completions`, {
    method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 }),
  });
  assert.equal(chat.status, 200, await chat.clone().text());
  await chat.json();

  const audit = await satroute({ SATROUTE_DATA_DIR: s.data_dir }, 'audit', '--json');
  assert.equal(audit.code, 0, audit.stderr);
  assert.equal(JSON.parse(audit.stdout).requests.length, 1);

  run.child.kill('SIGTERM');
  assert.equal(await run.exited, 0, run.err());
  assert.equal(run.out(), first + '\n', 'stdout is that one line; progress went to stderr');
  assert.equal(fs.existsSync(s.data_dir), false);
  assert.ok(await refused(`${s.http}/healthz`));
});

test('Ctrl-C in the middle of the demo stops it cleanly: exit 130, no data directory left, the daemon gone', { timeout: 120_000 }, async (t) => {
  const run = demo(t);
  const seen = await new Promise<{ dataDir: string; http: string }>((resolve, reject) => {
    const lines = readline.createInterface({ input: run.child.stdout });
    let dataDir = '';
    lines.on('line', (line) => {
      dataDir = /data directory (\S+)/.exec(line)?.[1] ?? dataDir;
      const http = /HTTP (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(line)?.[1];
      if (http) resolve({ dataDir, http });
    });
    void run.exited.then((code) => reject(new Error(`demo exited with ${code} before its daemon ran: ${run.err()}`)));
  });
  assert.ok(fs.existsSync(seen.dataDir));
  run.child.kill('SIGINT');
  assert.equal(await run.exited, 130, run.err());
  assert.match(run.err(), /satroute demo: stopped by SIGINT/);
  assert.equal(fs.existsSync(seen.dataDir), false);
  assert.ok(await refused(`${seen.http}/healthz`));
});
