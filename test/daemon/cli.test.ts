import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { VERSION } from '../../daemon/version.ts';
import { root, satroute } from './cli/run.ts';

test('satroute --version prints the version that status and the metrics report, which is the package version', async () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  assert.equal(VERSION, pkg.version, 'daemon/version.ts and package.json name the same version');
  const r = await satroute({}, '--version');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
});
