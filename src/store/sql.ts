/**
 * The little SQL surface the store needs, implemented once per backend (better-sqlite3, pg), so
 * that the store's logic, its SQL and its state machine are written once. Statements use `?`
 * placeholders; the PostgreSQL side numbers them.
 */
export interface SqlExecutor {
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A statement without rows; the number of rows it changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

export interface SqlTransaction extends SqlExecutor {
  /** Tell every node (every onChange) that this study changed, once the transaction commits. */
  notify(studyUid: string): void;
}

export interface SqlDatabase extends SqlExecutor {
  /** Row locks for read-modify-write (" FOR UPDATE" on PostgreSQL; SQLite locks the whole file instead). */
  readonly forUpdate: string;
  /** Claiming: rows another transaction holds are skipped, not waited for. */
  readonly skipLocked: string;
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  /** Where committed changes of studies arrive (of this process, and on PostgreSQL of every node). */
  onNotify(handler: (studyUid: string) => void): void;
  close(): Promise<void>;
}

/** An ordered schema change; `version` is recorded in schema_version once applied. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}
