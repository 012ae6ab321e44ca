/**
 * The store's per-study cost: what one study costs the queue from its first instance to "exported"
 * (addInstance, assembly, claim, results with an SR + SC for one destination, two export records,
 * exported), on the embedded SQLite file against a private PostgreSQL (Debian's server, local, fsync
 * on as in production), same code, same run. SQLite commits without an fsync (WAL, synchronous=NORMAL:
 * the spool is the durable record), so PostgreSQL is measured twice: every commit flushed (its
 * default), and with synchronous_commit=off on the database (the same class: a machine crash may lose
 * the last commits, never corrupts). Also the claim rate of two nodes on PostgreSQL.
 *
 *   npx tsx bench/store.ts [--n 300]
 *
 * Prints one JSON object, then a table (ms per study; ratio PostgreSQL / SQLite).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { openSqliteStore, openStore, type Store } from "../src/store/index.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { queueCostPerStudyMs } from "./store-cost.ts";

const nArg = process.argv.indexOf("--n");
const N = nArg > 0 ? Number(process.argv[nArg + 1]) : 300;
/** Two nodes draining one queue of N studies at once: claims per second. */
async function twoNodeClaims(a: Store, b: Store): Promise<number> {
  for (let i = 0; i < N; i++) {
    const s = `2.25.${5_000_000 + i}`;
    await a.addInstance({ sopInstanceUid: `${s}.1`, sopClassUid: "1.2", studyInstanceUid: s, seriesInstanceUid: `${s}.2`, transferSyntaxUid: "1.2.840.10008.1.2.1", path: `/s/${s}`, sha256: "x", size: 1, callingAeTitle: "M", header: {} });
    await a.transition(s, "queued", { from: ["received"] });
  }
  const drain = async (s: Store) => {
    let n = 0;
    while (await s.claimNext()) n++;
    return n;
  };
  const t0 = performance.now();
  const counts = await Promise.all([drain(a), drain(b)]);
  const ms = performance.now() - t0;
  if (counts[0]! + counts[1]! !== N) throw new Error(`claimed ${counts[0]! + counts[1]!} of ${N}`);
  return (N / ms) * 1000;
}

const dir = mkdtempSync(join(tmpdir(), "cxr-bench-store-"));
const server = await startPostgres({ durable: true });
try {
  const sqlite = openSqliteStore(join(dir, "store.sqlite"), { nodeId: "bench" });
  const sqliteMs = await queueCostPerStudyMs(sqlite, N);
  await sqlite.close();
  const url = await server.createDatabase();
  const open = (nodeId: string, at = url) => openStore({ kind: "postgres", url: at, nodeId, leaseSeconds: 60 }, { dataDir: dir });
  const postgres = await open("bench");
  const postgresMs = await queueCostPerStudyMs(postgres, N);
  const asyncUrl = await server.createDatabase();
  const admin = new pg.Client({ connectionString: asyncUrl });
  await admin.connect();
  await admin.query(`ALTER DATABASE ${new URL(asyncUrl).pathname.slice(1)} SET synchronous_commit = off`);
  await admin.end();
  const postgresAsync = await open("bench", asyncUrl);
  const postgresAsyncMs = await queueCostPerStudyMs(postgresAsync, N);
  await postgresAsync.close();
  const other = await open("bench-2");
  const claimsPerSecond = await twoNodeClaims(postgres, other);
  await postgres.close();
  await other.close();
  const result = {
    n: N,
    perStudyMs: { sqlite: sqliteMs, postgres: postgresMs, postgresSynchronousCommitOff: postgresAsyncMs },
    ratio: { postgres: postgresMs / sqliteMs, postgresSynchronousCommitOff: postgresAsyncMs / sqliteMs },
    postgresTwoNodeClaimsPerSecond: claimsPerSecond,
  };
  console.log(JSON.stringify(result));
  console.log([
    "", "backend                                ms/study   × SQLite",
    `sqlite (WAL, synchronous=NORMAL)       ${sqliteMs.toFixed(2).padStart(8)}   1.00`,
    `postgresql (every commit flushed)      ${postgresMs.toFixed(2).padStart(8)}   ${result.ratio.postgres.toFixed(2)}`,
    `postgresql (synchronous_commit=off)    ${postgresAsyncMs.toFixed(2).padStart(8)}   ${result.ratio.postgresSynchronousCommitOff.toFixed(2)}`,
    `two PostgreSQL nodes claiming one queue (flushed): ${claimsPerSecond.toFixed(0)} claims/s`,
  ].join("\n"));
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
