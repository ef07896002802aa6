#!/usr/bin/env node
// `npm run build`, and `prepare`, which `npm ci` and a bare `npm install` run (with or without
// --omit=dev: esbuild is a runtime dependency): compiles the CLI and the daemon into dist/ with
// esbuild, so `satroute` starts without loading tsx and each command loads only its chunk.
//
// - One ESM bundle with code splitting: every `await import()` in a command's action becomes
//   its own chunk, dependencies included (fewer files to resolve and read at start-up).
//   better-sqlite3 stays external (a native addon); CommonJS dependencies get a `require`.
// - Workers: a source that starts a worker with `new URL('./x.mjs', import.meta.url)` gets
//   dist/x.mjs, compiled from x.ts beside it when there is one (x.mjs is then the tsx
//   bootstrap the sources use). Every `new URL('./…', import.meta.url)` in the output must
//   name a file of the build, or the build fails.
// - zod's 40-odd translated error-message locales are left out (only `en`, its default, is
//   kept): they are half of zod's code, and every command that reads the config parses it.
// - test/ is never compiled (the demo's market runs from source; bin/satroute.js runs `demo`
//   through tsx): imports of it stay external.
// - dist/build.json (bin/compiled.js) lists every input with its size and mtime. A file saved
//   while the build ran would be recorded with content the build did not read, so when any
//   input is that recent the build runs again, and is kept once two builds in a row saw the
//   same fingerprints (which also accepts files dated in the future). At most 3 tries.
// The package works without dist/ (bin/satroute.js then uses tsx): with --if-possible, as in
// `prepare`, a failed build warns and exits 0 instead of failing the install.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { fingerprint, writeManifest } from './compiled.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = 'daemon/cli.ts';
const NOT_COMPILED = ['test'];
const EXTERNAL = ['better-sqlite3'];
/** File timestamps come from a coarse kernel clock; count a file this recent as changed during the build. */
const SETTLE_MS = 50;
const ATTEMPTS = 3;
const WORKER_URL = /new URL\(\s*(['"])(\.{1,2}\/[^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g;
// Bundled CommonJS dependencies call require() for Node's built-ins; ESM has none of its own.
const BANNER = "import { createRequire as __satrouteCreateRequire } from 'node:module'; const require = __satrouteCreateRequire(import.meta.url);";

export class BuildError extends Error {
  name = 'BuildError';
}

/**
 * Build into outDir (replaced as a whole when the build succeeds; a CLI started meanwhile sees
 * the old build or none, never half of one).
 * @param {{ root?: string, outDir?: string, clock?: () => number }} [options]
 * @returns {Promise<{ outDir: string, entry: string, outputs: string[], inputs: number, attempts: number, startup: string[] }>}
 */
export async function build(options = {}) {
  const root = path.resolve(options.root ?? ROOT);
  const outDir = path.resolve(options.outDir ?? path.join(root, 'dist'));
  const clock = options.clock ?? Date.now;
  const esbuild = await import('esbuild');
  const tmpDir = `${outDir}.tmp-${process.pid}`;
  try {
    let previous = '';
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      fs.rmSync(tmpDir, { recursive: true, force: true });
      const startedAtMs = clock();
      const { inputs, outputs, startup } = await compile(esbuild, root, tmpDir);
      const recorded = [...inputs].sort().map((file) => [file, ...(fingerprint(path.resolve(root, file)) ?? [-1, -1])]);
      const seen = JSON.stringify(recorded);
      const settled = recorded.every(([, , mtimeMs]) => mtimeMs <= startedAtMs - SETTLE_MS) || seen === previous;
      previous = seen;
      if (!settled) continue;
      writeManifest(tmpDir, { entry: 'cli.mjs', outputs, inputs: recorded, builtAt: new Date(startedAtMs).toISOString() });
      fs.rmSync(outDir, { recursive: true, force: true });
      fs.renameSync(tmpDir, outDir);
      return { outDir, entry: path.join(outDir, 'cli.mjs'), outputs, inputs: recorded.length, attempts: attempt, startup };
    }
    throw new BuildError(`sources kept changing during ${ATTEMPTS} builds; run the build again when they are saved`);
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

/** One complete build into dir: the CLI bundle, then each worker it starts (and theirs). */
async function compile(esbuild, root, dir) {
  const inputs = new Set(['package.json', 'tsconfig.json', path.relative(root, fileURLToPath(import.meta.url))].filter((f) => fs.existsSync(path.join(root, f))));
  const workers = new Map(); // output name -> source file
  const common = {
    absWorkingDir: root,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    external: EXTERNAL,
    banner: { js: BANNER },
    sourcemap: 'linked',
    // Whitespace and syntax only: names stay readable in stack traces.
    minifyWhitespace: true,
    minifySyntax: true,
    metafile: true,
    logLevel: 'silent',
    plugins: [notCompiled(root), workerUrls(root, workers), zodEnglishOnly()],
  };
  const run = async (opts) => {
    let result;
    try {
      result = await esbuild.build({ ...common, ...opts });
    } catch (err) {
      const first = err.errors?.[0];
      throw new BuildError(first ? `${first.location ? `${first.location.file}:${first.location.line}: ` : ''}${first.text}` : err.message);
    }
    for (const file of Object.keys(result.metafile.inputs)) if (fs.existsSync(path.join(root, file))) inputs.add(file);
    return result.metafile;
  };
  const startup = loadedAtStartup(await run({ entryPoints: [{ in: ENTRY, out: 'cli' }], splitting: true }), root, dir);
  // Each worker is its own bundle; a worker that starts workers adds to the map while we go.
  const built = new Set();
  for (let next; (next = [...workers].find(([name]) => !built.has(name))); ) {
    const [name, source] = next;
    built.add(name);
    await run({ entryPoints: [{ in: source, out: name.replace(/\.mjs$/, '') }], splitting: false });
  }
  const outputs = listFiles(dir);
  for (const file of outputs.filter((f) => f.endsWith('.mjs'))) {
    for (const [, , ref] of fs.readFileSync(path.join(dir, file), 'utf8').matchAll(WORKER_URL)) {
      if (!fs.existsSync(path.join(dir, path.dirname(file), ref))) throw new BuildError(`${file} refers to ${ref} (new URL(…, import.meta.url)), which the build does not produce`);
    }
  }
  return { inputs, outputs, startup };
}

/** The source files every command loads before its action runs: the entry and its static imports. */
function loadedAtStartup(metafile, root, dir) {
  const outputs = metafile.outputs;
  const entry = Object.keys(outputs).find((o) => outputs[o].entryPoint && path.resolve(root, o) === path.join(dir, 'cli.mjs'));
  const seen = new Set();
  for (const stack = [entry]; stack.length; ) {
    const o = stack.pop();
    if (seen.has(o)) continue;
    seen.add(o);
    for (const i of outputs[o].imports) if (i.kind === 'import-statement' && outputs[i.path]) stack.push(i.path);
  }
  return [...new Set([...seen].flatMap((o) => Object.keys(outputs[o].inputs)))].sort();
}

/** Imports of test/ stay as they are (never compiled; see NOT_COMPILED). */
function notCompiled(root) {
  const dirs = NOT_COMPILED.map((d) => path.join(root, d) + path.sep);
  return {
    name: 'satroute-not-compiled',
    setup(b) {
      b.onResolve({ filter: /^\.{1,2}\// }, (args) => {
        const target = path.resolve(args.resolveDir, args.path);
        if (!dirs.some((d) => target.startsWith(d))) return undefined;
        return { path: pathToFileURL(target).href, external: true };
      });
    },
  };
}

/** zod's `locales` namespace with only the default English messages (see the header). */
function zodEnglishOnly() {
  return {
    name: 'satroute-zod-english-only',
    setup(b) {
      b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => {
        if (!/[\\/]zod[\\/]v4[\\/](classic|core)$/.test(args.resolveDir)) return undefined;
        const en = path.join(args.resolveDir, '..', 'locales', 'en.js');
        return fs.existsSync(en) ? { path: en, namespace: 'zod-locales' } : undefined;
      });
      b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({ contents: `export { default as en } from ${JSON.stringify(args.path)};`, resolveDir: path.dirname(args.path), loader: 'js' }));
    },
  };
}

/** Point worker URLs at dist/<name>.mjs and remember which source each one compiles from. */
function workerUrls(root, workers) {
  return {
    name: 'satroute-worker-urls',
    setup(b) {
      b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
        if (!args.path.startsWith(root + path.sep) || args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        const text = await fs.promises.readFile(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        const contents = text.replace(WORKER_URL, (whole, quote, ref) => {
          if (!/\.[cm]?[jt]s$/.test(ref)) return whole; // not code: left for the output check
          const target = path.resolve(path.dirname(args.path), ref);
          const ts = target.replace(/\.[cm]?js$/, '.ts');
          const source = ts !== target && fs.existsSync(ts) ? ts : target;
          const name = `${path.basename(target).replace(/\.[cm]?[jt]s$/, '')}.mjs`;
          const known = workers.get(name);
          if (known && known !== source) throw new BuildError(`two workers compile to dist/${name}: ${known} and ${source}`);
          workers.set(name, source);
          return `new URL(${quote}./${name}${quote}, import.meta.url)`;
        });
        return { contents, loader: /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js' };
      });
    },
  };
}

function listFiles(dir, prefix = '') {
  return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(dir, path.join(prefix, e.name)) : [path.join(prefix, e.name)],
  ).sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, 'if-possible': { type: 'boolean' }, quiet: { type: 'boolean' } } });
  const started = performance.now();
  try {
    const r = await build({ outDir: values.out });
    if (!values.quiet) process.stderr.write(`satroute: compiled ${r.inputs} files into ${path.relative(process.cwd(), r.outDir) || '.'} in ${Math.round(performance.now() - started)} ms\n`);
  } catch (err) {
    const reason = err instanceof BuildError ? err.message : String(err?.message ?? err);
    if (!values['if-possible']) {
      process.stderr.write(`satroute build failed: ${reason}\n`);
      process.exit(1);
    }
    process.stderr.write(`satroute: no compiled build (${reason}); the CLI runs from the TypeScript sources (slower start)\n`);
  }
}
