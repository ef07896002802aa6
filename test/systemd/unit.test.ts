// systemd/satroute.service: the sandbox the brief asks for, checked by systemd's own tools
// where they are installed (Debian's `systemd` package; .ci/run installs it when missing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root } from '../daemon/cli/run.ts';
import { DAEMON_NODE_FLAGS } from '../../bin/node-flags.js';

const unitFile = path.join(root, 'systemd', 'satroute.service');
const unitText = fs.readFileSync(unitFile, 'utf8');

/** Every `Key=value` of the unit, in order (a key may repeat, as SystemCallFilter does). */
function directives(text: string): [string, string][] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !l.startsWith('[')).map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1)];
  });
}
const all = directives(unitText);
const value = (key: string) => all.filter(([k]) => k === key).map(([, v]) => v);

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const noAnalyze = analyze.error || analyze.status !== 0 ? 'systemd-analyze is not installed (Debian: apt-get install -y systemd)' : false;

/** The unit as installed on this machine: node where this test's node is, the code where this checkout is. */
function installedCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-unit-'));
  const file = path.join(dir, 'satroute.service');
  fs.writeFileSync(file, unitText.replace('/usr/bin/node', process.execPath).replaceAll('/opt/satroute', root));
  return file;
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr })),
  );
}

test('the unit keeps its data in StateDirectory=satroute as a dedicated user and restarts after a crash', () => {
  assert.deepEqual(value('StateDirectory'), ['satroute']);
  assert.deepEqual(value('StateDirectoryMode'), ['0700']);
  assert.deepEqual(value('User'), ['satroute']);
  assert.deepEqual(value('Restart'), ['on-failure']);
  assert.match(value('ExecStart')[0], /\/bin\/satroute\.js start$/);
  assert.deepEqual(value('Environment').filter((e) => e.startsWith('SATROUTE_DATA_DIR')), [], 'the data directory comes from $STATE_DIRECTORY');
});

test('the daemon runs with its node flags wherever it starts: the unit, the satroute command and the ws bench', () => {
  const flags = DAEMON_NODE_FLAGS.join(' ');
  assert.ok(flags.length > 0);
  assert.equal(value('ExecStart')[0], `/usr/bin/node ${flags} /opt/satroute/bin/satroute.js start`);
  assert.equal(fs.readFileSync(path.join(root, 'bin', 'satroute.js'), 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  assert.match(fs.readFileSync(path.join(root, 'bench', 'ws.ts'), 'utf8'), /\[\.\.\.DAEMON_NODE_FLAGS, /);
});

test('systemctl stop sends SIGTERM and waits long enough for in-flight requests to drain', () => {
  assert.deepEqual(value('KillSignal'), ['SIGTERM']);
  assert.ok(Number(value('TimeoutStopSec')[0]) >= 120, 'a long generation must be able to finish');
});

test('the sandbox: no privileges, read-only system, no home, private tmp, Unix and IP sockets only, @system-service calls', () => {
  for (const key of ['NoNewPrivileges', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'LockPersonality', 'RestrictNamespaces', 'RestrictSUIDSGID']) {
    assert.deepEqual(value(key), ['yes'], key);
  }
  assert.deepEqual(value('ProtectSystem'), ['strict']);
  assert.deepEqual(value('CapabilityBoundingSet'), ['']);
  assert.deepEqual(value('RestrictAddressFamilies')[0].split(/\s+/).sort(), ['AF_INET', 'AF_INET6', 'AF_UNIX']);
  assert.equal(value('SystemCallFilter')[0], '@system-service');
  assert.deepEqual(value('SystemCallErrorNumber'), ['EPERM']);
  assert.deepEqual(value('MemoryDenyWriteExecute'), [], 'Node aborts under it (see the next test)');
});

test('Node cannot run with memory-deny-write-execute, which is why the unit leaves it out', (t) => {
  // PR_SET_MDWE (65) is the kernel switch MemoryDenyWriteExecute= uses on newer systemd; python3
  // sets it and then becomes node. Kernels before 6.3 do not have it.
  const probe = spawnSync('python3', ['-c', `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)
os.execv(sys.argv[1], [sys.argv[1], '-e', 'process.stdout.write("alive")'])`, process.execPath], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error) return t.skip('python3 is not installed');
  if (probe.status === 77) return t.skip('this kernel has no PR_SET_MDWE (Linux < 6.3)');
  assert.notEqual(probe.stdout, 'alive');
  assert.ok(probe.status !== 0 || probe.signal !== null, 'node must have died');
});

test('systemd-analyze verify accepts the unit without a single warning', { skip: noAnalyze }, async () => {
  const file = installedCopy();
  try {
    const r = await run('systemd-analyze', ['verify', '--man=no', file]);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out, '', 'an unknown or misspelt directive is only a warning: none allowed');
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});

test('systemd-analyze security rates the sandbox 2.0 or better ("OK")', { skip: noAnalyze }, async () => {
  const file = installedCopy();
  try {
    const r = await run('systemd-analyze', ['security', '--offline=true', '--threshold=20', '--no-pager', file]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Overall exposure level for satroute\.service: [01]\.\d OK/);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});
