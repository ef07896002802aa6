// A wallet process for the crash tests: it does one job against the data directory and the
// mint it is given, prints marker lines on stdout, and is killed with SIGKILL by the test.
//   node --import tsx test/wallet/crash-child.ts <dataDir> <mintUrl> <job> [arg]
import path from 'node:path';
import { CashuWallet } from '../../wallet/index.ts';
import { openDatabase } from '../../db/sqlite.ts';

const [dataDir, mintUrl, job, arg] = process.argv.slice(2);
const db = openDatabase(path.join(dataDir, 'satroute.sqlite'));
const wallet = new CashuWallet({ db, dataDir, mints: [mintUrl] });
const say = (line: string) => process.stdout.write(line + '\n');

if (job === 'quote') {
  // Persist a quote, show its invoice, then wait (the test kills us before we mint).
  const q = await wallet.createFundingQuote(Number(arg));
  say(`QUOTE ${q.quoteId} ${q.bolt11}`);
  await new Promise(() => {});
} else if (job === 'mint') {
  // Mint a paid quote; the test kills us while the mint call is in flight.
  say('MINTING');
  await wallet.fundingStatus(arg);
  say('DONE');
} else if (job === 'withdraw') {
  say('WITHDRAWING');
  await wallet.withdraw(arg);
  say('DONE');
} else if (job === 'receive') {
  say('RECEIVING');
  await wallet.receive(arg);
  say('DONE');
}
db.close();
