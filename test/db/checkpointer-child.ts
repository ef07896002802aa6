// Child for checkpointer.test.ts: opens the database as the daemon does (NORMAL with a
// checkpointer that never gets to run), commits rows, says so, then waits to be killed.
import { Checkpointer } from '../../db/checkpointer.ts';
import { openDatabase } from '../../db/sqlite.ts';

const db = openDatabase(process.argv[2]);
db.exec('CREATE TABLE IF NOT EXISTS t (n INTEGER)');
Checkpointer.start(db, { intervalMs: 10_000 });
const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
for (let i = 0; i < 100; i++) db.transaction(() => insert.run(i))();
process.stdout.write('committed\n');
setInterval(() => {}, 1_000);
