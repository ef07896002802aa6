// How `keys` and `audit` reach the books: through the running daemon's control socket, else -
// no daemon, or one that does not serve these methods - on the data directory's database in
// this process (SQLite serialises writers across processes; no wallet lock is needed).
// Only types up front: `--help` must not load SQLite or the books (see test/bin/build.e2e.ts).
import type { Config } from '../config.ts';
import { CliError } from './common.ts';

/** Call a books method ('keys.create', 'audit.requests', ...) and return its JSON answer. */
export async function callBooks<T>(config: Config, method: string, params: unknown = {}): Promise<T> {
  const { callDaemon, ControlCallError, DaemonNotRunningError } = await import('../control/server.ts');
  try {
    return await callDaemon<T>(config.dataDir, method, params);
  } catch (err) {
    const older = err instanceof ControlCallError && err.code === 'unknown_method';
    if (!(err instanceof DaemonNotRunningError) && !older) throw new CliError((err as Error).message);
  }
  const [{ booksControlHandlers }, { ClientKeys }, { Budgets }, { databaseFile, openDatabase }, { redact }] = await Promise.all([
    import('../control/books.ts'), import('../api/auth.ts'), import('../requests/budgets.ts'), import('../../db/sqlite.ts'), import('../../protocol/logger.ts'),
  ]);
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    const handlers = booksControlHandlers({ db, keys: new ClientKeys(db), budgets: new Budgets(db) });
    return (await handlers[method](params)) as T;
  } catch (err) {
    // One line, as the daemon would have sent it over the socket.
    throw new CliError(redact((err as Error).message));
  } finally {
    db.close();
  }
}
