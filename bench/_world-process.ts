// A whole test world (test/world scenario) in its own process, so a benchmark's process measures
// only satroute. Prints world.info() as one JSON line on stdout, then answers one JSON line per
// command line on stdin:
//   {"pay":"lnbc..."}                         pay a BOLT11 invoice on the world's Lightning
//   {"knobs":{"provider":"name","set":{...}}} change a provider's knobs (e.g. {"dead":true})
//   {"stats":"name"}                          a provider's stats()
//   node --import tsx bench/_world-process.ts '<scenario JSON>'
import readline from 'node:readline';
import { startWorld, type ProviderKnobs } from '../test/world/index.ts';

const world = await startWorld(JSON.parse(process.argv[2] ?? '{}'));
process.stdout.write(JSON.stringify(world.info()) + '\n');

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => void (async () => {
  try {
    const cmd = JSON.parse(line) as { pay?: string; knobs?: { provider: string; set: Partial<ProviderKnobs> }; stats?: string };
    if (cmd.pay) {
      world.lightning.pay(cmd.pay);
      process.stdout.write(JSON.stringify({ paid: true }) + '\n');
    } else if (cmd.knobs) {
      const p = world.provider(cmd.knobs.provider);
      const dead = cmd.knobs.set.dead;
      Object.assign(p.knobs, { ...cmd.knobs.set, dead: p.knobs.dead });
      if (dead !== undefined) await p.setDead(dead);
      process.stdout.write(JSON.stringify({ ok: true }) + '\n');
    } else if (cmd.stats) {
      process.stdout.write(JSON.stringify(world.provider(cmd.stats).stats()) + '\n');
    } else throw new Error('unknown command');
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: (err as Error).message }) + '\n');
  }
})());
rl.on('close', () => void (async () => {
  await world.stop();
  process.exit(0);
})());
