// How the daemon keeps its commits (config `storage.durability`):
//   'interval' (default)  synchronous=NORMAL with the checkpointer thread (db/checkpointer.ts): no
//                         commit on the request path waits for the disk; a process kill loses
//                         nothing; a power cut at most the last `syncIntervalMs` of commits, which
//                         the sweep after an unclean stop reconciles with the mints.
//   'commit'              synchronous=FULL: every commit fsynced before the request goes on
//                         (3-18 ms a commit on this machine's disk, two or more per request).
// And whether the last run stopped cleanly (db/runs.ts): after an unclean stop the wallet's
// unspent proofs are checked with their mints before the daemon listens.
import { Checkpointer, DEFAULT_SYNC_INTERVAL_MS } from '../db/checkpointer.ts';
import { beginRun, endRun, type LastStop } from '../db/runs.ts';
import type { DB } from '../db/sqlite.ts';
import type { Logger } from '../protocol/logger.ts';

export interface StorageOptions {
  durability?: 'interval' | 'commit';
  syncIntervalMs?: number;
}

export class Durability {
  /** How the run before this one ended. */
  readonly lastStop: LastStop;
  private readonly runId: number;
  private readonly checkpointer: Checkpointer | null;
  /** The unspent proofs are known to agree with the mints (no sweep owed, or it ran). */
  private reconciled: boolean;

  constructor(private readonly db: DB, opts: StorageOptions = {}, private readonly clock: () => number = Date.now, logger?: Logger) {
    const run = beginRun(db, clock);
    this.runId = run.id;
    this.lastStop = run.lastStop;
    this.reconciled = run.lastStop !== 'unclean';
    this.checkpointer = (opts.durability ?? 'interval') === 'interval' ? Checkpointer.start(db, { intervalMs: opts.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS, logger }) : null;
  }

  /** The sweep owed after an unclean stop has run at every mint. */
  markReconciled(): void {
    this.reconciled = true;
  }

  /** A clean stop: recorded only once nothing is owed (else the next start sweeps again). */
  stopCleanly(): void {
    if (this.reconciled) endRun(this.db, this.runId, this.clock);
  }

  /** Every commit so far on disk, off the event loop (absent with 'commit' durability: each commit already is). */
  get flush(): (() => Promise<void>) | undefined {
    const cp = this.checkpointer;
    return cp ? () => cp.flush() : undefined;
  }

  /** The checkpointer's last checkpoint; before the database closes. */
  async close(): Promise<void> {
    await this.checkpointer?.stop();
  }
}
