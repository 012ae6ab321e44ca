/**
 * What one study costs the store's queue from its first instance to "exported": addInstance,
 * assembly, claim, results with an SR + SC for one destination, two export records, exported.
 * One measurement, used by bench/store.ts (SQLite against PostgreSQL) and bench/scale.ts.
 */
import type { Store } from "../src/store/index.ts";

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

/** Mean ms one study costs `store`'s queue, over `n` studies after a warm-up of 20 (prepared statements, pool). */
export async function queueCostPerStudyMs(store: Store, n: number): Promise<number> {
  for (let i = 0; i < 20; i++) await oneStudy(store, 900_000 + i); // warm-up (prepared statements, pool)
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await oneStudy(store, i);
  return (performance.now() - t0) / n;
}

