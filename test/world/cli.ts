// `npm run world [-- --scenario FILE]`: start the local market alone, print one JSON line with
// its URLs, and run until SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseScenario, startWorld, defaultScenario, ScenarioError, type Scenario } from './scenario.ts';

const USAGE = `usage: npm run world [-- --scenario FILE]

Starts the local test world (Nostr relay, Cashu mints, simulated Lightning, an NWC wallet
service and Routstr providers) and prints one JSON line on stdout:
  {"relay","mints":[...],"providers":[{"name","url"}],"nwc"}
then runs until SIGINT or SIGTERM. Logs go to stderr. npm prints its own banner on stdout
first; use \`npm run -s world\` (or \`node --import tsx test/world/cli.ts\`) for a clean stream.
When stopping it from a script, signal the process group (npm does not pass SIGTERM on).

options:
  --scenario FILE  a scenario JSON file (see test/world/scenarios/); default: the built-in one
  -h, --help       show this help`;

function fail(message: string): never {
  process.stderr.write(`world: ${message}\n`);
  process.exit(1);
}

function loadScenario(file: string | undefined): Scenario {
  if (file === undefined) return defaultScenario;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    fail(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  try {
    return parseScenario(json);
  } catch (err) {
    if (err instanceof ScenarioError) fail(`${file}: ${err.message}`);
    throw err;
  }
}

async function main(): Promise<void> {
  let values: { scenario?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ options: { scenario: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    fail(`${(err as Error).message} (see --help)`);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const scenario = loadScenario(values.scenario);
  // stdout carries exactly the one JSON line; anything a part logs goes to stderr.
  console.log = console.error;
  console.info = console.error;

  const world = await startWorld(scenario).catch((err: Error) => fail(`could not start the world: ${err.message}`));
  process.stdout.write(JSON.stringify(world.info()) + '\n');

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`world: ${signal}, stopping\n`);
    const timer = setTimeout(() => fail('did not stop within 10 s'), 10_000);
    timer.unref();
    world.stop().then(
      () => process.exit(0),
      (err: Error) => fail(`error while stopping: ${err.message}`),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: Error) => fail(err.message));
