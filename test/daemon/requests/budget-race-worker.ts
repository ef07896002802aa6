// One racer of the cross-thread budget race: its own SQLite connection, released by a shared
// barrier at the same moment as the others, then as many admissions as it can in a tight loop.
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from '../../../db/sqlite.ts';
import { Budgets } from '../../../daemon/requests/budgets.ts';
import { BudgetExceededError } from '../../../daemon/api/errors.ts';

const { file, worker, tries, worstCaseMsat, client, gate, now } = workerData as {
  file: string; worker: number; tries: number; worstCaseMsat: number; client: { name: string; dailySats: number; maxSatsPerRequest: number | null };
  gate: SharedArrayBuffer; now: number;
};
const db = openDatabase(file, { synchronous: 'NORMAL' });
const budgets = new Budgets(db, () => now);
const flag = new Int32Array(gate);
Atomics.add(flag, 1, 1); // ready
Atomics.wait(flag, 0, 0); // until the main thread opens the gate
const admitted: string[] = [];
let refused = 0;
for (let i = 0; i < tries; i++) {
  const id = `w${worker}-${i}`;
  try {
    budgets.reserve(id, client, worstCaseMsat);
    admitted.push(id);
  } catch (err) {
    if (!(err instanceof BudgetExceededError)) throw err;
    refused += 1;
  }
}
db.close();
parentPort!.postMessage({ admitted, refused });
