// When may the compiled CLI run? Only while every file it was built from is unchanged.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compiledEntry, fingerprint, staleReason, writeManifest } from '../../bin/compiled.js';

function project(t: TestContext) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-compiled-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const dist = path.join(root, 'dist');
  fs.mkdirSync(path.join(root, 'src'), { recursive: true });
  fs.mkdirSync(dist);
  fs.writeFileSync(path.join(root, 'src', 'a.ts'), 'export const a = 1;\n');
  fs.writeFileSync(path.join(root, 'src', 'b.ts'), 'export const b = 2;\n');
  fs.writeFileSync(path.join(dist, 'cli.mjs'), 'export const main = () => {};\n');
  const inputs = ['src/a.ts', 'src/b.ts'].map((f) => [f, ...fingerprint(path.join(root, f))!] as [string, number, number]);
  writeManifest(dist, { entry: 'cli.mjs', outputs: ['cli.mjs'], inputs, builtAt: new Date().toISOString() });
  return { root, dist };
}

test('a build whose inputs are untouched runs compiled', (t) => {
  const { root, dist } = project(t);
  assert.equal(staleReason(root, dist), null);
  assert.equal(compiledEntry(root, dist), `file://${path.join(dist, 'cli.mjs')}`);
});

test('an edited source sends the CLI back to the sources, even with its old mtime restored', (t) => {
  const { root, dist } = project(t);
  const file = path.join(root, 'src', 'a.ts');
  const before = fs.statSync(file);
  fs.writeFileSync(file, 'export const a = 10;\n');
  assert.equal(staleReason(root, dist), 'src/a.ts changed since the build');
  fs.utimesSync(file, before.atime, before.mtime); // as `cp -p` or `tar x` would leave it
  assert.equal(staleReason(root, dist), 'src/a.ts changed since the build');
  assert.equal(compiledEntry(root, dist), null);
});

test('a source saved again with the same content still counts as changed (mtime moved)', (t) => {
  const { root, dist } = project(t);
  const file = path.join(root, 'src', 'b.ts');
  const later = new Date(fs.statSync(file).mtimeMs + 5_000);
  fs.utimesSync(file, later, later);
  assert.equal(staleReason(root, dist), 'src/b.ts changed since the build');
});

test('a deleted input, a missing output or no manifest at all means no compiled run', (t) => {
  const { root, dist } = project(t);
  fs.rmSync(path.join(dist, 'cli.mjs'));
  assert.equal(staleReason(root, dist), 'dist/cli.mjs is missing');
  fs.rmSync(path.join(root, 'src', 'b.ts'));
  assert.equal(staleReason(root, dist), 'src/b.ts is gone');
  fs.writeFileSync(path.join(dist, 'build.json'), '{"format":99}');
  assert.equal(staleReason(root, dist), 'unknown build format');
  fs.rmSync(path.join(dist, 'build.json'));
  assert.equal(staleReason(root, dist), 'no build');
  assert.equal(staleReason(root, path.join(root, 'nowhere')), 'no build');
});

test('ownership or permission changes (ctime only) keep the build current', (t) => {
  const { root, dist } = project(t);
  fs.chmodSync(path.join(root, 'src', 'a.ts'), 0o600);
  assert.equal(staleReason(root, dist), null);
});
