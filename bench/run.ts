// `npm run bench [-- --json] [-- --only NAME]`: runs every case module in bench/ (each exports
// `run(): Promise<Figure[]>`) one after another, and prints its figures.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Figure } from './_figure.ts';

const { values } = parseArgs({
  options: { json: { type: 'boolean' }, only: { type: 'string', multiple: true }, soak: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  process.stdout.write(`Usage: npm run bench [-- --json] [-- --only CASE ...]
Runs the benchmark cases in bench/ against the local test world (127.0.0.1 only).
  --json   one JSON line per figure: {"name","value","unit","baseline","ratio"}
  --only   run only these cases (file names without .ts), e.g. --only wallet, --only route, --only cli
           (cli: how fast \`satroute\` answers, against a bare \`node\` start)
  --soak   only the soak run (minutes: paid requests/s, RSS over time, SQLite size, p99 added latency);
           a plain run leaves it out
`);
  process.exit(0);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const cases = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .filter((name) => (values.soak ? name === 'soak' : name !== 'soak' || values.only?.includes(name)))
  .filter((name) => !values.only || values.only.includes(name))
  .sort();

let failed = 0;
for (const name of cases) {
  const mod = (await import(pathToFileURL(path.join(here, `${name}.ts`)).href)) as { run?: () => Promise<Figure[]> };
  if (typeof mod.run !== 'function') continue;
  const started = performance.now();
  try {
    const figures = await mod.run();
    for (const f of figures) {
      const row = { name: f.name, value: round(f.value), unit: f.unit, baseline: f.baseline ?? null, ratio: f.ratio == null ? null : round(f.ratio) };
      if (values.json) process.stdout.write(JSON.stringify(row) + '\n');
      else process.stdout.write(`${name.padEnd(10)} ${f.name.padEnd(36)} ${String(row.value).padStart(12)} ${f.unit}${row.baseline == null ? '' : `  (baseline ${round(row.baseline)}, ratio ${row.ratio})`}\n`);
    }
    if (!values.json) process.stderr.write(`bench ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  } catch (err) {
    failed++;
    process.stderr.write(`bench ${name} failed: ${(err as Error).stack ?? err}\n`);
  }
}
process.exit(failed ? 1 : 0);

function round(v: number): number {
  return Math.abs(v) >= 100 ? Math.round(v * 10) / 10 : Math.round(v * 1000) / 1000;
}
