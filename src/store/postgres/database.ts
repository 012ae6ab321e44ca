import pg from "pg";
import type { Migration, SqlDatabase, SqlTransaction } from "../sql.ts";

/** The channel every node LISTENs on; the payload is the Study Instance UID that changed. */
const CHANNEL = "cxr_study";

/** `?` placeholders (the store's SQL) as PostgreSQL's `$1, $2, …` (the store's SQL has no `?` in literals). */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * PostgreSQL through a `pg` pool. Changes are announced with NOTIFY inside the transaction that
 * made them (delivered on commit, to every node); one dedicated connection LISTENs and feeds
 * onNotify, so the worklist of any node sees the studies of every node.
 */
export class PostgresDatabase implements SqlDatabase {
  readonly forUpdate = " FOR UPDATE";
  readonly skipLocked = " FOR UPDATE SKIP LOCKED";
  private readonly pool: pg.Pool;
  private listener?: pg.Client;
  private notifyHandler?: (studyUid: string) => void;
  private closing = false;
  private isListening = false;

  constructor(private readonly url: string, private readonly onError: (err: Error) => void = () => {}) {
    this.pool = new pg.Pool({ connectionString: url, max: 8 });
    // An idle client that loses its server must not crash the process; the next query reports it.
    this.pool.on("error", (err) => this.onError(err));
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query(numberPlaceholders(sql), params)).rows as T[];
  }

  async run(sql: string, params: unknown[] = []): Promise<number> {
    return (await this.pool.query(numberPlaceholders(sql), params)).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const notified = new Set<string>();
    const tx: SqlTransaction = {
      query: async <R>(sql: string, params: unknown[] = []) => (await client.query(numberPlaceholders(sql), params)).rows as R[],
      run: async (sql: string, params: unknown[] = []) => (await client.query(numberPlaceholders(sql), params)).rowCount ?? 0,
      notify: (uid) => void notified.add(uid),
    };
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await fn(tx);
      for (const uid of notified) await client.query("SELECT pg_notify($1, $2)", [CHANNEL, uid]);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = true; // the connection itself failed: do not give it back to the pool
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  onNotify(handler: (studyUid: string) => void): void {
    this.notifyHandler = handler;
    void this.listen();
  }

  /** One connection LISTENs for the cluster's changes; it reconnects when the server goes away. */
  private async listen(): Promise<void> {
    if (this.closing || this.listener) return;
    const client = new pg.Client({ connectionString: this.url });
    this.listener = client;
    const retry = (err: Error) => {
      if (this.closing || this.listener !== client) return;
      this.onError(new Error(`LISTEN connection lost (${err.message}); reconnecting`));
      this.listener = undefined;
      this.isListening = false;
      void client.end().catch(() => undefined);
      setTimeout(() => void this.listen(), 1000).unref();
    };
    client.on("error", retry);
    client.on("notification", (msg) => {
      if (msg.channel === CHANNEL && msg.payload) this.notifyHandler?.(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.isListening = this.listener === client;
    } catch (err) {
      retry(err as Error);
    }
  }

  /** Resolves once the LISTEN connection is up (tests wait for it before expecting notifications). */
  async listening(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.isListening) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("PostgreSQL LISTEN connection not up");
  }

  /** Applies the newer migrations; an advisory lock lets several nodes start at once. */
  async migrate(migrations: readonly Migration[]): Promise<number> {
    const client = await this.pool.connect();
    try {
      await client.query("SELECT pg_advisory_lock(hashtext('cxr-triage schema'))");
      await client.query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)");
      const current = Number((await client.query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")).rows[0].v);
      const newest = migrations.at(-1)?.version ?? 0;
      if (current > newest) throw new Error(`schema version ${current} is newer than this release knows (${newest}); refusing to use it`);
      for (const m of migrations.filter((m) => m.version > current)) {
        await client.query("BEGIN");
        try {
          await client.query(m.sql);
          await client.query("INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)", [m.version, m.description, new Date().toISOString()]);
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK");
          throw err;
        }
      }
      return newest;
    } finally {
      await client.query("SELECT pg_advisory_unlock(hashtext('cxr-triage schema'))").catch(() => undefined);
      client.release();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
    await this.pool.end();
  }
}
