import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { pino } from "pino";
import WebSocket from "ws";
import { resolveConfig, SOP_CLASS, type ServiceConfig } from "../../src/config/service.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { freePort } from "../../src/peers/ports.ts";
import { startService, type RunningService } from "../../src/service.ts";
import type { StudyRecord } from "../../src/store/index.ts";
import { postgresUnavailable, startPostgres, type PrivatePostgres } from "../helpers/postgres.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { orthancStudyInstances, waitFor } from "./helpers.ts";
import { asNewStudy } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const SR_CLASSES = ["1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"];
const TOKEN = "cluster-worklist-token-0123456789";
const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`cluster test: ${unavailable}`);

/**
 * Two nodes (two services in this process, each with its own listener and workers) sharing one
 * PostgreSQL and one data folder, Orthanc as the PACS, storescu as the modalities.
 */
describe.runIf(requireSharedData() && !unavailable)("cluster: two nodes, one PostgreSQL, one shared data folder", () => {
  const tmp = tempDir("cxr-cluster-");
  let pg: PrivatePostgres;
  let orthanc: OrthancHandle;
  let classifier: Classifier;
  const nodes: RunningService[] = [];
  let cfg: string;

  beforeAll(async () => {
    pg = await startPostgres();
    const url = await pg.createDatabase();
    initModelDir({ inputSize: 64, seed: 1, out: join(tmp.dir, "model") });
    classifier = await Classifier.load(join(tmp.dir, "model"));
    orthanc = await startOrthanc({ dir: join(tmp.dir, "orthanc") });
    cfg = writeStorescuConfig(tmp.dir);
    for (const nodeId of ["node-1", "node-2"]) {
      const config: ServiceConfig = resolveConfig({
        dataDir: join(tmp.dir, "shared-data"),
        model: { dir: join(tmp.dir, "model") },
        dicom: { aeTitle: "CXR_CLUSTER", port: await freePort(), acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.SECONDARY_CAPTURE] },
        intake: { stableAgeSeconds: 1 },
        pipeline: { concurrency: 1 },
        export: { destinations: [{ aeTitle: orthanc.aet, host: "127.0.0.1", port: orthanc.dicomPort }], retryInitialSeconds: 0.5 },
        api: { httpPort: 0, tokens: [TOKEN] },
        store: { kind: "postgres", url, nodeId, leaseSeconds: 10 },
      });
      // Node 2 serves the worklist: it must show node 1's studies too.
      nodes.push(await startService(config, { logger: pino({ level: "silent" }), classifier, api: nodeId === "node-2" }));
    }
  });

  afterAll(async () => {
    for (const n of nodes) await n.close();
    await classifier?.close();
    await orthanc?.stop();
    await pg?.stop();
    tmp.cleanup();
  });

  it("studies sent to either listener are each processed once, by one node, exported once, and node 2's worklist (REST, WebSocket) shows them all", async () => {
    const seenBy2 = new Map<string, StudyRecord>();
    nodes[1]!.store.onChange((r) => seenBy2.set(r.studyInstanceUid, r));
    const api = nodes[1]!.api!;
    const ws = new WebSocket(`${api.url.replace("http", "ws")}/ws`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    const pushed: { studyInstanceUid: string; state: string; processedBy?: string }[] = [];
    ws.on("message", (data) => pushed.push((JSON.parse(String(data)) as { study: (typeof pushed)[number] }).study));
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const files = Array.from({ length: 6 }, (_, i) => asNewStudy(join(SHARED_DICOM, `test${(i % 3) + 1}.dcm`), join(tmp.dir, `study-${i}.dcm`)));
    const studies = files.map((f) => String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID));
    const sent = await Promise.all([0, 1].map((n) => storescu({ port: nodes[n]!.listener.port, aec: "CXR_CLUSTER", cfg, files: files.filter((_, i) => i % 2 === n) })));
    for (const r of sent) expect(r.code, r.log.slice(-1000)).toBe(0);
    const all = () => Promise.all(studies.map((s) => nodes[0]!.store.get(s)));
    await waitFor("every study exported", async () => (await all()).every((r) => r?.state === "exported"), 180_000);
    const records = (await all()).map((r) => r!);
    for (const rec of records) {
      expect(["node-1", "node-2"]).toContain(rec.processedBy);
      // one pass through the pipeline: claimed once, done once, exported once
      expect(rec.history.map((h) => h.state)).toEqual(["received", "queued", "processing", "done", "exported"]);
      const inPacs = await orthancStudyInstances(orthanc, rec.studyInstanceUid);
      expect(inPacs.filter((i) => SR_CLASSES.includes(i.sopClassUid)).map((i) => i.sopInstanceUid)).toEqual([rec.outputs!.sr]);
    }
    // node 2's listeners heard of the studies node 1 finished (LISTEN/NOTIFY), down to their last state
    const processedBy1 = records.filter((r) => r.processedBy === "node-1").map((r) => r.studyInstanceUid);
    await waitFor("node 2 saw node 1's studies exported", () => processedBy1.every((s) => seenBy2.get(s)?.state === "exported"), 10_000);
    expect((await nodes[1]!.store.countsByState()).exported).toBe(6);
    await waitFor("node 2's WebSocket pushed node 1's studies exported", () => processedBy1.every((s) => pushed.some((p) => p.studyInstanceUid === s && p.state === "exported" && p.processedBy === "node-1")), 10_000);
    ws.close();
    const listed = (await (await fetch(`${api.url}/api/studies`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()) as { studyInstanceUid: string; processedBy?: string }[];
    expect(listed.map((s) => s.studyInstanceUid).sort()).toEqual([...studies].sort());
    expect(listed.map((s) => s.processedBy).sort()).toEqual(records.map((r) => r.processedBy).sort());
  }, 240_000);
});
