// The compiled CLI as `npm ci` leaves it: built by bin/build.js in a fresh copy of the project
// (its own dist/, the same node_modules), run through bin/satroute.js as a user runs it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { build } from '../../bin/build.js';
import { root, startDaemonProcess } from '../daemon/cli/run.ts';

/** Not copied: dependencies (shared by a link), builds, git, the tests and benchmarks. */
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', 'test', 'bench']);

/** A copy of the project's code in a temp directory, sharing node_modules. */
function clone(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-clone-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const entry of fs.readdirSync(root)) {
    if (!NOT_COPIED.has(entry) && !entry.startsWith('dist.tmp-')) fs.cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
  }
  fs.symlinkSync(fs.realpathSync(path.join(root, 'node_modules')), path.join(dir, 'node_modules'));
  return dir;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file, ...args], { env: { ...process.env, SATROUTE_DEBUG_LAUNCH: '1', ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const satroute = (dir: string, args: string[], env: Record<string, string> = {}) => run(path.join(dir, 'bin', 'satroute.js'), args, env);

function dataDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-data-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('with no build at all (dist/ never made) satroute works from the sources', async (t) => {
  const dir = clone(t);
  const r = await satroute(dir, ['--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: satroute/);
  assert.match(r.stderr, /running the sources through tsx \(no build\)/);
});

test('after the build the CLI runs compiled; an edited source runs from source until the next build', async (t) => {
  const dir = clone(t);
  const built = await build({ root: dir });
  assert.ok(built.inputs > 50, `the build read ${built.inputs} files`);
  // What every command loads before its action runs: commander and the command registrations.
  // A command file that imports wallet, SQLite, zod ... at its top slows down every command;
  // load it inside the action (`await import(...)`) instead.
  // (daemon/version.ts is one constant, imported by nothing else: the one source of --version.)
  const heavy = built.startup.filter((f) => !/(^|\/)node_modules\/commander\//.test(f) && !/^daemon\/cli(\.ts$|\/)/.test(f) && f !== 'daemon/version.ts');
  assert.deepEqual(heavy, [], 'loaded by every command (even --help)');
  assert.ok(built.startup.includes('daemon/cli/wallet.ts'));

  const first = await satroute(dir, ['--version']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, '0.1.0\n');
  assert.match(first.stderr, /running the compiled build .*dist\/cli\.mjs/);

  fs.appendFileSync(path.join(dir, 'daemon', 'cli.ts'), "\nprocess.stdout.write('edited\\n');\n");
  const edited = await satroute(dir, ['--version']);
  assert.equal(edited.stdout, 'edited\n0.1.0\n', 'the edit is live at once');
  assert.match(edited.stderr, /running the sources through tsx \(daemon\/cli\.ts changed since the build\)/);

  await build({ root: dir });
  const rebuilt = await satroute(dir, ['--version']);
  assert.equal(rebuilt.stdout, 'edited\n0.1.0\n');
  assert.match(rebuilt.stderr, /running the compiled build/);
});

test('the compiled daemon starts, answers wallet balance through its socket, refuses a second start and stops on SIGTERM', async (t) => {
  const dir = clone(t);
  await build({ root: dir });
  const data = dataDir(t);
  const env = { SATROUTE_DATA_DIR: data, SATROUTE_RELAYS: '', SATROUTE_LISTEN: '127.0.0.1:0' };

  const alone = await satroute(dir, ['wallet', 'balance', '--json'], env);
  assert.equal(alone.code, 0, alone.stderr);
  assert.deepEqual(JSON.parse(alone.stdout), { total_sat: 0, pending_sat: 0, held_sat: 0, sessions: [], mints: [], nwc: false });
  assert.match(alone.stderr, /running the compiled build/);

  const { child: daemon, info, stderr, exited } = await startDaemonProcess(t, { SATROUTE_DEBUG_LAUNCH: '1', ...env }, { script: path.join(dir, 'bin', 'satroute.js') });
  assert.equal(info.pid, daemon.pid);
  assert.match(stderr(), /running the compiled build/);

  // The daemon holds the wallet lock: only its control socket can answer this.
  const through = await satroute(dir, ['wallet', 'balance', '--json'], env);
  assert.equal(through.code, 0, through.stderr);
  assert.equal(JSON.parse(through.stdout).total_sat, 0);

  const second = await satroute(dir, ['start'], env);
  assert.notEqual(second.code, 0);
  assert.match(second.stderr, new RegExp(`satroute: another satroute daemon \\(pid ${daemon.pid}\\) is already running on ${data}\\n$`));

  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, stderr());
  assert.ok(!fs.existsSync(path.join(data, 'daemon.json')));
});

test('every worker the compiled daemon starts loads without tsx', async (t) => {
  const dir = clone(t);
  const built = await build({ root: dir });
  const referenced = new Set<string>();
  for (const file of built.outputs.filter((f) => f.endsWith('.mjs'))) {
    for (const m of fs.readFileSync(path.join(built.outDir, file), 'utf8').matchAll(/new URL\(\s*"\.\/([^"]+)"\s*,\s*import\.meta\.url\s*\)/g)) referenced.add(m[1]);
  }
  assert.ok(referenced.size >= 1, 'the daemon starts at least the change worker');
  for (const name of referenced) {
    const url = pathToFileURL(path.join(built.outDir, name)).href;
    // Load the worker module inside a worker thread with no --import tsx (execArgv: []).
    const worker = new Worker(`import(${JSON.stringify(url)}).then(() => require('node:worker_threads').parentPort.postMessage({ loaded: true }), (e) => require('node:worker_threads').parentPort.postMessage({ error: String(e) }))`, { eval: true, execArgv: [] });
    const answer = await new Promise<{ loaded?: boolean; error?: string }>((resolve, reject) => {
      worker.on('message', (m: { loaded?: boolean; error?: string }) => (m.loaded || m.error ? resolve(m) : undefined));
      worker.once('error', reject);
    });
    await worker.terminate();
    assert.deepEqual(answer, { loaded: true }, `${name}: ${answer.error}`);
  }
});

test('a build that fails leaves the CLI on the sources and does not fail the install', async (t) => {
  const dir = clone(t);
  await build({ root: dir });
  fs.appendFileSync(path.join(dir, 'daemon', 'cli.ts'), "\nif (process.env.NEVER_SET_ANYWHERE) await import('no-such-package-anywhere');\n");

  const strict = await run(path.join(dir, 'bin', 'build.js'), []);
  assert.equal(strict.code, 1);
  assert.match(strict.stderr, /^satroute build failed: daemon\/cli\.ts:\d+: Could not resolve "no-such-package-anywhere"\n$/);

  const prepare = await run(path.join(dir, 'bin', 'build.js'), ['--if-possible']);
  assert.equal(prepare.code, 0, 'npm ci must not fail for it');
  assert.match(prepare.stderr, /no compiled build .*; the CLI runs from the TypeScript sources/);

  const help = await satroute(dir, ['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: satroute/);
  assert.match(help.stderr, /running the sources through tsx \(daemon\/cli\.ts changed since the build\)/);
});

test('code that reaches into test/ (the demo runs the local market from there) stays out of the build, which still succeeds', async (t) => {
  const dir = clone(t);
  fs.mkdirSync(path.join(dir, 'test', 'world'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'test', 'world', 'index.ts'), "import 'no-such-dev-dependency';\nexport const startWorld = () => 'world';\n");
  fs.appendFileSync(path.join(dir, 'daemon', 'cli.ts'), "\nexport const loadWorld = () => import('../test/world/index.ts');\n");
  const built = await build({ root: dir });
  const cli = fs.readFileSync(built.entry, 'utf8');
  assert.ok(cli.includes(JSON.stringify(`file://${path.join(dir, 'test', 'world', 'index.ts')}`)), 'imported from its place in the sources, at run time');
  const demo = await satroute(dir, ['demo']);
  assert.match(demo.stderr, /running the sources through tsx \(demo runs from source\)/);
});

test('a bad satroute.json gets the same one-line message compiled and from source (zod keeps its English messages)', async (t) => {
  const dir = clone(t);
  await build({ root: dir });
  const data = dataDir(t);
  fs.writeFileSync(path.join(data, 'satroute.json'), JSON.stringify({ mints: 5, probe: { concurrency: -1 } }));
  const compiled = await satroute(dir, ['wallet', 'balance'], { SATROUTE_DATA_DIR: data });
  const source = await satroute(dir, ['wallet', 'balance'], { SATROUTE_DATA_DIR: data, SATROUTE_FROM_SOURCE: '1' });
  const message = (r: Result) => r.stderr.split('\n').filter((l) => l && !l.startsWith('satroute: running')).join('\n');
  assert.match(compiled.stderr, /running the compiled build/);
  assert.equal(compiled.code, 1);
  assert.equal(message(compiled), `satroute: ${path.join(data, 'satroute.json')}: mints: Invalid input: expected array, received number; probe.concurrency: Too small: expected number to be >0`);
  assert.equal(message(compiled), message(source));
});

test('a source saved while the build runs is never recorded as built: the build runs again until two agree', async (t) => {
  const dir = clone(t);
  const cliFile = path.join(dir, 'daemon', 'cli.ts');
  // The clock says every file was saved just now (so each try is suspect), and the file
  // changes between the first and the second try.
  let calls = 0;
  const clock = () => {
    calls++;
    if (calls === 2) fs.appendFileSync(cliFile, "\nprocess.stdout.write('saved during the build\\n');\n");
    return fs.statSync(cliFile).mtimeMs;
  };
  const built = await build({ root: dir, clock });
  assert.equal(built.attempts, 3, 'try 2 read the new content; try 3 confirmed nothing changed since');
  const r = await satroute(dir, ['--version']);
  assert.match(r.stderr, /running the compiled build/);
  assert.equal(r.stdout, 'saved during the build\n0.1.0\n');
});

test('a source dated in the future (a skewed clock) still gets a build, on the second try', async (t) => {
  const dir = clone(t);
  const future = new Date(Date.now() + 3_600_000);
  fs.utimesSync(path.join(dir, 'daemon', 'cli.ts'), future, future);
  const built = await build({ root: dir });
  assert.equal(built.attempts, 2);
  assert.match((await satroute(dir, ['--version'])).stderr, /running the compiled build/);
});
