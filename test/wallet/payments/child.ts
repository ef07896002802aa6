// A wallet process for crash tests: opens the database, does one step of the payment path,
// prints a JSON line, then waits to be killed (SIGKILL by the test). 'receive-change' waits
// for a line on stdin before swapping the change in, so the test can break the mint first.
//   node --import tsx test/wallet/payments/child.ts '<json args>'
import { openContext } from '../world.ts';
import { Payments } from '../../../wallet/payments/index.ts';
import { InlineSwapEngine } from '../../../wallet/swap/engine.ts';

interface Args {
  dbFile: string;
  mintUrl: string;
  step: 'take' | 'receive-change';
  paymentId: string;
  amountSat?: number;
  providerUrl?: string;
  changeToken?: string;
}

const args = JSON.parse(process.argv[2]) as Args;
const ctx = openContext(args.dbFile, [args.mintUrl]);
const payments = new Payments(ctx, { engine: new InlineSwapEngine(), autoRefill: false });
const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

setInterval(() => {}, 60_000); // stay alive until killed

if (args.step === 'take') {
  const taken = await payments.takeToken({ paymentId: args.paymentId, mint: args.mintUrl, amountSat: args.amountSat!, providerUrl: args.providerUrl ?? 'http://127.0.0.1:9' });
  say({ step: 'taken', token: taken.token, sentSat: taken.sentSat });
} else {
  await payments.takeToken({ paymentId: args.paymentId, mint: args.mintUrl, amountSat: args.amountSat!, providerUrl: args.providerUrl ?? 'http://127.0.0.1:9' });
  payments.settle(args.paymentId, args.changeToken);
  say({ step: 'settled' });
  // The test sets up the mint's fault, then says "go" on stdin.
  await new Promise((resolve) => process.stdin.once('data', resolve));
  const report = await payments.changeQueue.drain();
  say({ step: 'drained', report });
}
