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

/**
 * Schema changes that read the same on both backends: each backend's list gives them its own version
 * number (SQLite has one more step before them, the move from the first release's JSON columns).
 */
export const SHARED_SCHEMA_CHANGES = {
  srSupersedes: {
    description: "an SR output names the SR it replaces",
    sql: `ALTER TABLE outputs ADD COLUMN supersedes TEXT;`,
  },
  notificationOutbox: {
    description: "notification outbox (HL7, FHIR, webhooks), filled with the results",
    sql: `
CREATE TABLE notifications (
  study_uid TEXT NOT NULL, destination TEXT NOT NULL, results_key TEXT NOT NULL, required INTEGER NOT NULL DEFAULT 1,
  state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, next_at BIGINT NOT NULL DEFAULT 0,
  last_error TEXT, ack TEXT, created_at TEXT NOT NULL, delivered_at TEXT, last_instance_at BIGINT NOT NULL,
  PRIMARY KEY (study_uid, destination)
);
CREATE INDEX notifications_due ON notifications(state, next_at);
`,
  },
  patientBirthDateAndSex: {
    description: "the patient's birth date and sex (RIS notifications)",
    sql: `ALTER TABLE studies ADD COLUMN patient_birth_date TEXT; ALTER TABLE studies ADD COLUMN patient_sex TEXT;`,
  },
} as const satisfies Record<string, Omit<Migration, "version">>;
