#!/usr/bin/env -S node --max-semi-space-size=4
// Entry point for the `satroute` command. Runs the compiled CLI (dist/, built by `npm ci` through
// `prepare`, or `npm run build`) when it is current, else the TypeScript sources through tsx:
// an edited source never runs as old compiled code, and no build is needed at all (just slower
// to start: tsx alone costs ~0.3 s). SATROUTE_FROM_SOURCE=1 forces the sources;
// SATROUTE_DEBUG_LAUNCH=1 says on stderr which one runs and why.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { staleReason, compiledEntry } from './compiled.js';

// Commands that need test/world (the demo's local market), which is never compiled.
const SOURCE_ONLY = new Set(['demo']);

// `satroute ... | head` closes the pipe early: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const forced = process.env.SATROUTE_FROM_SOURCE ? 'SATROUTE_FROM_SOURCE is set' : SOURCE_ONLY.has(args[0]) ? `${args[0]} runs from source` : null;
const compiled = forced ? null : compiledEntry(root);
let cli = null;
if (compiled) {
  // A build being replaced right now can vanish between the check and the import.
  cli = await import(compiled).catch((err) => (err?.code === 'ERR_MODULE_NOT_FOUND' ? null : Promise.reject(err)));
}
if (process.env.SATROUTE_DEBUG_LAUNCH) {
  const why = forced ?? (compiled ? (cli ? null : 'the build vanished while loading') : staleReason(root, path.join(root, 'dist')));
  process.stderr.write(why ? `satroute: running the sources through tsx (${why})\n` : `satroute: running the compiled build ${fileURLToPath(compiled)}\n`);
}
if (!cli) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(pathToFileURL(path.join(root, 'daemon', 'cli.ts')).href);
}
await cli.main(args);
