// The checkpointer's thread (db/checkpointer.ts): its own connection to the data directory's
// database; every `intervalMs` a PASSIVE checkpoint, in which SQLite syncs the WAL before copying
// it into the database and syncs the database after. Plain JavaScript: it needs no TypeScript and
// starts in ~20 ms. Messages out: {checkpoint:{log,checkpointed}} after each one that did work,
// {error}, {stopped}, {flushed:id}. In: {flush:id} (fsync the WAL now: every commit made before
// the request is then on disk), 'stop' (a last checkpoint, then close).
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

// Loaded outside a Checkpointer (the build's check that every worker loads without tsx): nothing to do.
if (workerData?.file) start(workerData);

function start({ file, intervalMs }) {
  const db = new Database(file);
  db.pragma('busy_timeout = 1000');

  function checkpoint() {
    try {
      const [row] = db.pragma('wal_checkpoint(PASSIVE)');
      if (row && row.log > 0) parentPort.postMessage({ checkpoint: { log: row.log, checkpointed: row.checkpointed } });
    } catch (err) {
      parentPort.postMessage({ error: String(err && err.message ? err.message : err) });
    }
  }

  const timer = setInterval(checkpoint, intervalMs);
  /** fsync the WAL file: it holds every commit not yet checkpointed (a missing one: none since the last checkpoint, which synced them). */
  function flush(id) {
    try {
      const fd = fs.openSync(`${file}-wal`, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      parentPort.postMessage({ flushed: id });
    } catch (err) {
      if (err && err.code === 'ENOENT') parentPort.postMessage({ flushed: id });
      else parentPort.postMessage({ flushed: id, error: String(err && err.message ? err.message : err) });
    }
  }

  parentPort.on('message', (msg) => {
    if (msg && typeof msg === 'object' && 'flush' in msg) return flush(msg.flush);
    if (msg !== 'stop') return;
    clearInterval(timer);
    checkpoint();
    db.close();
    parentPort.postMessage({ stopped: true });
    parentPort.close();
  });
}
