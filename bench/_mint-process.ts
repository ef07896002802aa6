// A test mint, and optionally a simulated Routstr provider on it, in their own process: the
// wallet benchmark then measures the wallet's CPU and event loop, not theirs. Prints
// {"url","provider"} on stdout, then pays each BOLT11 invoice written to stdin as a line
// {"pay":"lnbc..."} and answers {"paid":true} (or {"error"}).
//   node --import tsx bench/_mint-process.ts '{"inputFeePpk":0,"models":[...]}'
import readline from 'node:readline';
import { LightningNetwork } from '../test/world/lightning.ts';
import { startMint } from '../test/world/mint.ts';
import { startProvider, type ModelSpec } from '../test/world/provider.ts';

const opts = JSON.parse(process.argv[2] ?? '{}') as { inputFeePpk?: number; models?: ModelSpec[] };
const ln = new LightningNetwork();
const mint = await startMint({ lightning: ln, inputFeePpk: opts.inputFeePpk ?? 0, name: 'benchmint' });
const provider = opts.models ? await startProvider({ name: 'bench', relays: [], mints: [mint.url], models: opts.models, noAnnounce: true }) : null;
process.stdout.write(JSON.stringify({ url: mint.url, provider: provider?.url ?? null }) + '\n');

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  try {
    const { pay } = JSON.parse(line) as { pay: string };
    ln.pay(pay);
    process.stdout.write(JSON.stringify({ paid: true }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: (err as Error).message }) + '\n');
  }
});
rl.on('close', () => void (async () => {
  await provider?.stop();
  await mint.stop();
  process.exit(0);
})());
