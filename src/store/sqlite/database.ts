import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { Migration, SqlDatabase, SqlTransaction } from "../sql.ts";

/** Turns per database file in this process (see SqliteDatabase). */
const turns = new Map<string, { tail: Promise<unknown> }>();

/**
 * better-sqlite3 behind the async SqlDatabase surface. Transactions (and the statements between
 * them) take turns per file in this process: an async transaction must not interleave with another
 * on the same connection, and a second connection's BEGIN would wait on a lock that only this
 * (blocked) thread could release. Other processes (`cxr status`) wait on the file lock (busy_timeout). Commits are not fsynced (WAL, synchronous=NORMAL): after a power loss the
 * last ones can be missing; the spool files are fsynced and recovery records them again.
 */
export class SqliteDatabase implements SqlDatabase {
  readonly forUpdate = "";
  readonly skipLocked = ""; // one writer at a time: BEGIN IMMEDIATE serialises claims
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly turn: { tail: Promise<unknown> };
  private notifyHandler?: (studyUid: string) => void;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    const key = resolve(path);
    this.turn = turns.get(key) ?? { tail: Promise.resolve() };
    turns.set(key, this.turn);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
  }

  /** Prepared once: preparing costs about as much as running these small statements (addInstance is on the C-STORE path). */
  private statement(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private exec<T>(sql: string, params: unknown[] = []): { rows: T[]; changes: number } {
    const stmt = this.statement(sql);
    if (stmt.reader) return { rows: stmt.all(...params) as T[], changes: 0 };
    return { rows: [], changes: stmt.run(...params).changes };
  }

  /** Runs `fn` after everything queued before it on this connection. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.turn.tail.then(fn, fn);
    this.turn.tail = run.catch(() => undefined);
    return run;
  }

  query<T>(sql: string, params?: unknown[]): Promise<T[]> {
    return this.serial(() => this.exec<T>(sql, params).rows);
  }

  run(sql: string, params?: unknown[]): Promise<number> {
    return this.serial(() => this.exec(sql, params).changes);
  }

  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      const notified = new Set<string>();
      const tx: SqlTransaction = {
        query: async <R>(sql: string, params?: unknown[]) => this.exec<R>(sql, params).rows,
        run: async (sql: string, params?: unknown[]) => this.exec(sql, params).changes,
        notify: (uid) => void notified.add(uid),
      };
      this.db.exec("BEGIN IMMEDIATE");
      let result: T;
      try {
        result = await fn(tx);
        this.db.exec("COMMIT");
      } catch (err) {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
        throw err;
      }
      for (const uid of notified) this.notifyHandler?.(uid);
      return result;
    });
  }

  onNotify(handler: (studyUid: string) => void): void {
    this.notifyHandler = handler;
  }

  /** Applies the migrations newer than the recorded schema version, each in its own transaction. */
  migrate(migrations: readonly Migration[]): number {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)");
    const current = (this.db.prepare("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version").get() as { v: number }).v;
    const newest = migrations.at(-1)?.version ?? 0;
    if (current > newest) throw new Error(`${this.path}: schema version ${current} is newer than this release knows (${newest}); refusing to open it`);
    for (const m of migrations.filter((m) => m.version > current)) {
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)").run(m.version, m.description, new Date().toISOString());
      })();
    }
    return newest;
  }

  async close(): Promise<void> {
    await this.serial(() => undefined);
    if (this.db.open) this.db.close();
  }
}
