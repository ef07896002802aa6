// Durability off the event loop. The daemon's connection commits with synchronous=NORMAL: a
// commit appends to the WAL without an fsync (~20-50 us here instead of 3-18 ms), and survives
// the process being killed - the WAL is in the kernel's page cache. A power cut or kernel crash
// could lose the last commits; this thread bounds that. Every `intervalMs` it checkpoints from its
// own connection (SQLite syncs the WAL, copies it into the database, syncs that), so at most about
// `intervalMs` of commits are ever only in memory: PostgreSQL's synchronous_commit=off with its
// WAL writer's delay. The daemon's own connection then never checkpoints (wal_autocheckpoint is
// raised to a backstop), so no commit on the request path waits for a disk.
// After an unclean stop the daemon asks its mints about the proofs it counts as unspent
// (DESIGN.md step 4: "after one, reconcile unspent proofs with the mint").
import { Worker } from 'node:worker_threads';
import type { DB } from './sqlite.ts';

/** Where the thread's trouble is told (the daemon's logger fits; db/ imports nothing of protocol/). */
export interface CheckpointerLog {
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface CheckpointerOptions {
  /** How often the WAL is synced and checkpointed, ms (default 200). */
  intervalMs?: number;
  logger?: CheckpointerLog;
}

export const DEFAULT_SYNC_INTERVAL_MS = 200;
/** Pages after which the daemon's own connection would checkpoint anyway (~40 MB): a backstop should the thread stall. */
const BACKSTOP_PAGES = 10_000;

export class Checkpointer {
  private readonly worker: Worker;
  private stopping: Promise<void> | null = null;
  private exited = false;
  /** Checkpoint errors the thread reported. */
  errors = 0;
  private waiters: (() => void)[] = [];
  private readonly flushes = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private nextFlush = 1;

  private constructor(db: DB, opts: CheckpointerOptions) {
    db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
    this.worker = new Worker(new URL('./checkpointer-worker.mjs', import.meta.url), { workerData: { file: db.name, intervalMs: opts.intervalMs ?? DEFAULT_SYNC_INTERVAL_MS } });
    this.worker.unref();
    this.worker.once('exit', () => {
      this.exited = true;
      // The thread ended before stop(): nothing syncs the WAL behind this connection any more, so
      // it goes back to fsyncing every commit and checkpointing on its own.
      if (!this.stopping && db.open) {
        db.pragma('synchronous = FULL');
        db.pragma('wal_autocheckpoint = 1000');
      }
      for (const f of this.flushes.values()) f.reject(new Error('the checkpointer thread ended'));
      this.flushes.clear();
    });
    this.worker.on('message', (msg: { checkpoint?: unknown; error?: string; flushed?: number }) => {
      if (msg.flushed !== undefined) {
        const f = this.flushes.get(msg.flushed);
        this.flushes.delete(msg.flushed);
        if (msg.error) f?.reject(new Error(`the WAL could not be synced: ${msg.error}`));
        else f?.resolve();
        return;
      }
      if (msg.checkpoint) for (const w of this.waiters.splice(0)) w();
      if (msg.error) {
        this.errors++;
        opts.logger?.warn('WAL checkpoint failed; commits stay in the WAL until the next one', { error: msg.error });
      }
    });
    this.worker.on('error', (err) => opts.logger?.error('WAL checkpointer thread failed; every commit is fsynced on the event loop from now on', { error: err }));
  }

  /** Switch `db` (a file database in WAL mode) to synchronous=NORMAL with this thread behind it. */
  static start(db: DB, opts: CheckpointerOptions = {}): Checkpointer {
    if (db.memory) throw new Error('the checkpointer needs a database file');
    db.pragma('synchronous = NORMAL');
    return new Checkpointer(db, opts);
  }

  /**
   * Resolves once every commit made before the call is on disk: the thread fsyncs the WAL, so the
   * event loop goes on serving meanwhile (a commit with synchronous=FULL would stall it for the
   * fsync, 3-50 ms on a busy disk). Rejects if the thread cannot (the caller then commits durably itself).
   */
  flush(): Promise<void> {
    if (this.exited || this.stopping) return Promise.reject(new Error('the checkpointer has stopped'));
    const id = this.nextFlush++;
    return new Promise<void>((resolve, reject) => {
      this.flushes.set(id, { resolve, reject });
      this.worker.postMessage({ flush: id });
    });
  }

  /** Resolves after the next checkpoint that finds commits to copy (tests). */
  nextCheckpoint(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** A last checkpoint, then the thread ends. Call before closing the database. */
  stop(): Promise<void> {
    return (this.stopping ??= new Promise<void>((resolve) => {
      if (this.exited) return resolve();
      const done = () => resolve();
      this.worker.once('exit', done);
      this.worker.on('message', (msg: { stopped?: boolean }) => {
        if (msg.stopped) void this.worker.terminate().then(done, done);
      });
      this.worker.ref(); // the last checkpoint keeps the process alive until it is done
      this.worker.postMessage('stop');
    }));
  }
}
