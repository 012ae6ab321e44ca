import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { pino } from "pino";
import { listenerConfigSchema, resolveConfig, SOP_CLASS } from "../../src/config/service.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { startListener, type DicomListener } from "../../src/dicom-listener/listener.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { freePort } from "../../src/peers/ports.ts";
import { startService, type RunningService } from "../../src/service.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { apiConfigSchema, priorityConfigSchema } from "../../src/config/worklist.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer, type ApiServer } from "../../src/worklist/server.ts";
import { postgresUnavailable, startPostgres, type PrivatePostgres } from "../helpers/postgres.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { orthancStudyInstances, waitFor } from "./helpers.ts";
import { asNewStudy, reUidStudies } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`PostgreSQL outage test: ${unavailable}`);

describe.runIf(requireSharedData() && !unavailable)("a node whose PostgreSQL is down", () => {
  const tmp = tempDir("cxr-pg-outage-");
  let pg: PrivatePostgres;
  let store: Store;
  let listener: DicomListener;
  let cfg: string;
  let api: ApiServer;
  let healthz: () => Promise<{ status: number; body: { status: string; reason?: string } }>;

  beforeAll(async () => {
    pg = await startPostgres();
    store = await openStore({ kind: "postgres", url: await pg.createDatabase(), nodeId: "node-1", leaseSeconds: 30 }, { dataDir: tmp.dir });
    cfg = writeStorescuConfig(tmp.dir);
    listener = await startListener({
      config: listenerConfigSchema.parse({ port: await freePort(), aeTitle: "CXR_PG", acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE] }),
      store,
      spoolDir: join(tmp.dir, "spool"),
      quarantineDir: join(tmp.dir, "quarantine"),
      logger: pino({ level: "silent" }),
    });
    api = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: ["outage-test-token-0123456789"] }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "silent" }),
    });
    const base = (await api.listen(0, "127.0.0.1")).url;
    healthz = async () => {
      const r = await fetch(`${base}/healthz`);
      return { status: r.status, body: (await r.json()) as { status: string; reason?: string } };
    };
  });
  afterAll(async () => {
    await api?.close();
    await listener?.close();
    await store?.close();
    await pg?.stop();
    tmp.cleanup();
  });

  it("answers C-STORE with a failure (never success) and /healthz 503 with the reason while the database is down; stores again once it is back", async () => {
    const file = asNewStudy(join(SHARED_DICOM, "test1.dcm"), join(tmp.dir, "a.dcm"));
    const study = String(readDicom(file, { withPixelData: false }).dataset.StudyInstanceUID);
    const send = () => storescu({ port: listener.port, aec: "CXR_PG", cfg, files: [file] });
    expect((await send()).log).toMatch(/Received Store Response \(Success\)/);
    pg.pause();
    try {
      const r = await send();
      expect(r.log).toMatch(/Received Store Response \(Refused: OutOfResources/);
      expect(r.log).not.toMatch(/Store Response \(Success\)/);
      const down = await healthz();
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ status: "store unavailable", reason: expect.stringMatching(/ECONNREFUSED|terminat|connect/i) });
    } finally {
      pg.resume();
    }
    expect(await healthz()).toMatchObject({ status: 200, body: { status: "ok", studies: 1 } });
    expect((await send()).log).toMatch(/Received Store Response \(Success\)/);
    expect(await store.instanceCount(study)).toBe(1);
    expect((await store.get(study))!.history.map((h) => h.state)).toEqual(["received"]);
  });
});

const SR_CLASSES = ["1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"];
const OUTAGE_MS = 30_000;

/**
 * A whole node (listener, pipeline, exporter; Orthanc as the PACS) whose PostgreSQL stops for 30 s
 * in the middle of a burst: studies are in the pipeline when it goes, modalities keep sending while
 * it is down (each attempt must be refused), and send again once it is back.
 */
describe.runIf(requireSharedData() && !unavailable)("PostgreSQL stopped for 30 s during a burst", () => {
  const tmp = tempDir("cxr-pg-burst-");
  let pg: PrivatePostgres;
  let orthanc: OrthancHandle;
  let node: RunningService;
  let cfg: string;

  beforeAll(async () => {
    pg = await startPostgres();
    orthanc = await startOrthanc({ dir: join(tmp.dir, "orthanc") });
    initModelDir({ inputSize: 64, seed: 1, out: join(tmp.dir, "model") });
    cfg = writeStorescuConfig(tmp.dir);
    node = await startService(resolveConfig({
      dataDir: join(tmp.dir, "data"),
      model: { dir: join(tmp.dir, "model") },
      dicom: { aeTitle: "CXR_BURST", port: await freePort(), acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.SECONDARY_CAPTURE] },
      intake: { stableAgeSeconds: 1 },
      pipeline: { concurrency: 1 },
      export: { destinations: [{ aeTitle: orthanc.aet, host: "127.0.0.1", port: orthanc.dicomPort }], retryInitialSeconds: 0.5, retryMaxSeconds: 2 },
      store: { kind: "postgres", url: await pg.createDatabase(), nodeId: "node-1", leaseSeconds: 5 },
    }), { logger: pino({ level: "silent" }), api: false });
  });
  afterAll(async () => {
    await node?.close();
    await orthanc?.stop();
    await pg?.stop();
    tmp.cleanup();
  });

  it("refuses every C-STORE while PostgreSQL is down; every study answered success, before or after, ends with exactly one SR (and its outputs) in Orthanc", async () => {
    const inputs = reUidStudies(tmp.dir, 12);
    const before = inputs.slice(0, 6);
    const retried = inputs.slice(6, 9); // sent during the outage (refused), sent again after it
    const after = inputs.slice(9);
    const send = (files: string[]) => storescu({ port: node.listener.port, aec: "CXR_BURST", cfg, files });
    const successes = (log: string) => (log.match(/Store Response \(Success\)/g) ?? []).length;

    // The burst: two modalities at once, and the database goes as soon as they are answered (studies still in the pipeline).
    const first = await Promise.all([send(before.slice(0, 3).map((s) => s.path)), send(before.slice(3).map((s) => s.path))]);
    for (const r of first) expect(successes(r.log), r.log.slice(-1000)).toBe(3);
    // The outage must hit studies in flight, not a node that has finished its work.
    const inFlight = (await Promise.all(before.map((s) => node.store.get(s.studyInstanceUid)))).filter((r) => r?.state !== "exported");
    expect(inFlight.length).toBeGreaterThan(0);
    pg.pause();
    const refusals: string[] = [];
    try {
      const end = Date.now() + OUTAGE_MS;
      while (Date.now() < end) {
        for (const s of retried) {
          const r = await send([s.path]);
          expect(successes(r.log), `answered success while PostgreSQL was down: ${r.log.slice(-600)}`).toBe(0);
          expect(r.log).toMatch(/Received Store Response \(Refused: OutOfResources/);
          refusals.push(s.studyInstanceUid);
        }
        await new Promise((res) => setTimeout(res, 500));
      }
    } finally {
      pg.resume();
    }
    expect(refusals.length).toBeGreaterThanOrEqual(retried.length * 3);

    // Back: the modalities send again (the refused studies) and go on (new studies); every answer is success.
    const second = await waitFor("the listener stores again", async () => {
      const r = await send(retried.map((s) => s.path));
      return successes(r.log) === retried.length ? r : undefined;
    }, 30_000, 500);
    expect(second.code).toBe(0);
    expect(successes((await send(after.map((s) => s.path))).log)).toBe(after.length);

    const studies = inputs.map((s) => s.studyInstanceUid);
    const all = () => Promise.all(studies.map((s) => node.store.get(s)));
    await waitFor("every study exported", async () => (await all()).every((r) => r?.state === "exported"), 180_000, 500);
    for (const rec of (await all()).map((r) => r!)) {
      expect(await node.store.instanceCount(rec.studyInstanceUid), rec.studyInstanceUid).toBe(1);
      const states = rec.history.map((h) => h.state);
      expect(states.filter((s) => s === "done"), `${rec.studyInstanceUid}: ${states.join(",")}`).toHaveLength(1);
      expect(states.filter((s) => s === "exported"), rec.studyInstanceUid).toHaveLength(1);
      const inPacs = await orthancStudyInstances(orthanc, rec.studyInstanceUid);
      expect(inPacs.filter((i) => SR_CLASSES.includes(i.sopClassUid)).map((i) => i.sopInstanceUid), rec.studyInstanceUid).toEqual([rec.outputs!.sr]);
      const expected = [rec.outputs!.sr!, ...(rec.outputs!.sc ?? []), ...(rec.outputs!.pm ?? [])].sort();
      expect(inPacs.map((i) => i.sopInstanceUid).sort(), rec.studyInstanceUid).toEqual(expected);
    }
  }, 300_000);
});
