#!/usr/bin/env node
// Entry point for the `satroute` command: runs the TypeScript CLI through tsx (no build step).
import { register } from 'tsx/esm/api';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

register();
const here = path.dirname(fileURLToPath(import.meta.url));
const { main } = await import(path.join(here, '..', 'daemon', 'cli.ts'));
await main(process.argv.slice(2));
