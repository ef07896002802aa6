// The direction of dependencies (DESIGN.md "Layout"): protocol/ imports nothing from wallet/ or
// daemon/; wallet/ never imports daemon/; the market and the wallet do not import each other;
// db/ is plumbing that imports no folder; and no two source files import each other, directly or
// through others (type-only imports included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FOLDERS = ['db', 'protocol', 'wallet', 'daemon'];

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mjs)$/.test(e.name)) out.push(path.relative(root, p));
    }
  };
  for (const f of FOLDERS) if (fs.existsSync(path.join(root, f))) walk(path.join(root, f));
  return out;
}

/** Relative imports of each source file (static, re-exports and dynamic), as root-relative paths. */
function importGraph(): Map<string, string[]> {
  const files = sourceFiles();
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const src = fs.readFileSync(path.join(root, f), 'utf8');
    const specs = [
      ...src.matchAll(/(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/g),
      ...src.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g),
    ].map((m) => path.relative(root, path.resolve(path.dirname(path.join(root, f)), m[1])));
    graph.set(f, specs.filter((s) => known.has(s)));
  }
  return graph;
}

test('protocol, wallet, daemon and db import one way: protocol and db from no one, the wallet never from the daemon, market and wallet not from each other', () => {
  const wrong: string[] = [];
  for (const [from, deps] of importGraph()) {
    for (const to of deps) {
      const rule =
        (from.startsWith('protocol/') && /^(wallet|daemon)\//.test(to)) ||
        (from.startsWith('db/') && !to.startsWith('db/')) ||
        (from.startsWith('wallet/') && to.startsWith('daemon/')) ||
        (/^daemon\/market/.test(from) && to.startsWith('wallet/'));
      if (rule) wrong.push(`${from} -> ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no source file imports itself through others (no import cycles)', () => {
  const graph = importGraph();
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const trail: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    trail.push(f);
    for (const to of graph.get(f) ?? []) {
      if (state.get(to) === 'open') cycles.push([...trail.slice(trail.indexOf(to)), to].join(' -> '));
      else if (!state.has(to)) visit(to);
    }
    trail.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});
