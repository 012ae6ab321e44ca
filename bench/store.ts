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

const nArg = process.argv.indexOf("--n");
const N = nArg > 0 ? Number(process.argv[nArg + 1]) : 300;
const DEST = "PACS@127.0.0.1:104";

async function oneStudy(store: Store, i: number): Promise<void> {
  const study = `2.25.${1000 + i}`;
  await store.addInstance({
    sopInstanceUid: `${study}.1`, sopClassUid: "1.2.840.10008.5.1.4.1.1.1", studyInstanceUid: study, seriesInstanceUid: `${study}.2`,
    transferSyntaxUid: "1.2.840.10008.1.2.1", path: `/spool/${study}/1.dcm`, sha256: `h${i}`, size: 1, callingAeTitle: "MOD", header: { modality: "DX" },
  });
  await store.instances(study);
  await store.setSeriesDecisions(study, [{ seriesInstanceUid: `${study}.2`, eligible: true, reason: "PA" }]);
  await store.transition(study, "queued", { from: ["received"] });
  const claimed = await store.claimNext();
  if (claimed !== study) throw new Error(`claimed ${claimed}, expected ${study}`);
  await store.recordResults(study, {
    processedKey: `k${i}`, findings: [], heatmaps: [], model: { name: "m", version: "1", deviceUid: "2.25.9", training: "t" },
    outputs: [
      { sopInstanceUid: `${study}.9.1`, studyInstanceUid: study, kind: "sr", sopClassUid: "1.2.840.10008.5.1.4.1.1.88.34", path: "/o/sr.dcm" },
      { sopInstanceUid: `${study}.9.2`, studyInstanceUid: study, kind: "sc", sopClassUid: "1.2.840.10008.5.1.4.1.1.7", path: "/o/sc.dcm" },
    ],
    destinations: [DEST],
  });
  if (!(await store.claimExport(study))) throw new Error("export claim refused");
  for (const o of await store.pendingExports(study, DEST)) await store.markExported(o.sopInstanceUid, DEST);
  await store.markStudyExported(study);
  await store.releaseExport(study);
}

async function perStudyMs(store: Store): Promise<number> {
  for (let i = 0; i < 20; i++) await oneStudy(store, 900_000 + i); // warm-up (prepared statements, pool)
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await oneStudy(store, i);
  return (performance.now() - t0) / N;
}

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
  const sqliteMs = await perStudyMs(sqlite);
  await sqlite.close();
  const url = await server.createDatabase();
  const open = (nodeId: string, at = url) => openStore({ kind: "postgres", url: at, nodeId, leaseSeconds: 60 }, { dataDir: dir });
  const postgres = await open("bench");
  const postgresMs = await perStudyMs(postgres);
  const asyncUrl = await server.createDatabase();
  const admin = new pg.Client({ connectionString: asyncUrl });
  await admin.connect();
  await admin.query(`ALTER DATABASE ${new URL(asyncUrl).pathname.slice(1)} SET synchronous_commit = off`);
  await admin.end();
  const postgresAsync = await open("bench", asyncUrl);
  const postgresAsyncMs = await perStudyMs(postgresAsync);
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
