import { hostname } from "node:os";
import { storeConfigSchema, type StoreConfig } from "../config/service.ts";
import { join } from "node:path";
import { PostgresDatabase } from "./postgres/database.ts";
import { POSTGRES_MIGRATIONS } from "./postgres/migrations.ts";
import type { Store } from "./roles.ts";
import { SqlStore } from "./sql-store.ts";
import { SqliteDatabase } from "./sqlite/database.ts";
import { SQLITE_MIGRATIONS } from "./sqlite/migrations.ts";


export interface OpenStoreOptions {
  /** SQLite: the data folder (store.sqlite lives in it). */
  dataDir: string;
  onListenerError?: (err: Error, studyUid: string) => void;
  /** Connection-level errors of PostgreSQL (logged; the failing operation reports its own). */
  onConnectionError?: (err: Error) => void;
}

/** The file of the embedded store inside a data folder. */
export function sqliteStorePath(dataDir: string): string {
  return join(dataDir, "store.sqlite");
}

/** Opens (and migrates) the configured store. The one place that knows which database is behind the roles. */
export async function openStore(cfg: StoreConfig, opts: OpenStoreOptions): Promise<Store> {
  const common = { nodeId: cfg.nodeId ?? hostname(), leaseSeconds: cfg.leaseSeconds, onListenerError: opts.onListenerError };
  if (cfg.kind === "postgres") {
    if (!cfg.url) throw new Error("store.url is required when store.kind is postgres");
    const db = new PostgresDatabase(cfg.url, opts.onConnectionError);
    try {
      await db.migrate(POSTGRES_MIGRATIONS);
    } catch (err) {
      await db.close();
      throw err;
    }
    const store = new SqlStore(db, { kind: "postgres", ...common });
    // onChange hears this node's own changes through LISTEN too: a store handed out before its
    // LISTEN connection is up would miss the changes made right after it opened.
    try {
      await db.listening();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }
  return openSqliteStore(sqliteStorePath(opts.dataDir), common);
}

/** The embedded store at `path` (tests and `cxr status` open a file directly). */
export function openSqliteStore(path: string, opts: { nodeId?: string; leaseSeconds?: number; onListenerError?: (err: Error, studyUid: string) => void } = {}): Store {
  const db = new SqliteDatabase(path);
  try {
    db.migrate(SQLITE_MIGRATIONS);
  } catch (err) {
    void db.close();
    throw new Error(`${path}: cannot open the store (${(err as Error).message})`);
  }
  return new SqlStore(db, { kind: "sqlite", nodeId: opts.nodeId ?? hostname(), leaseSeconds: opts.leaseSeconds ?? storeConfigSchema.parse({}).leaseSeconds, onListenerError: opts.onListenerError });
}
