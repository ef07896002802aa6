// A process that takes the wallet lock of a data directory and holds it until its stdin closes
// (or it is killed). Prints one line: "LOCKED <pid>" or "REFUSED <message>".
//   node --import tsx test/wallet/lock-child.ts <dataDir>
import { WalletLock } from '../../wallet/lock.ts';

const [dataDir] = process.argv.slice(2);
try {
  const lock = WalletLock.acquire(dataDir);
  process.stdout.write(`LOCKED ${process.pid}\n`);
  process.stdin.resume();
  process.stdin.once('end', () => {
    lock.release();
    process.exit(0);
  });
} catch (err) {
  process.stdout.write(`REFUSED ${(err as Error).message}\n`);
}
