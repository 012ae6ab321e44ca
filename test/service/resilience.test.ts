import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { resolveConfig, SOP_CLASS } from "../../src/config/service.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { openSqliteStore, type Store } from "../../src/store/index.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { freePort } from "../../src/peers/ports.ts";
import { startService } from "../../src/service.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { orthancStudyInstances, serve, waitFor } from "./helpers.ts";
import { asNewStudy, reUidStudies } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const AET = "CXR_RESILIENT";
const ACCEPTED = [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING, SOP_CLASS.SECONDARY_CAPTURE];

describe.runIf(requireSharedData())("restart safety and PACS outages", () => {
  const tmp = tempDir("cxr-resilience-");
  let orthanc: OrthancHandle;
  let cfg: string;
  const modelDir = join(tmp.dir, "model");
  beforeAll(() => {
    initModelDir({ inputSize: 64, seed: 1, out: modelDir });
    cfg = writeStorescuConfig(tmp.dir);
  });
  afterAll(async () => {
    await orthanc?.stop();
    tmp.cleanup();
  });

  it("SIGKILL while busy, restart: every one of 50 studies gets its SR, SC and Parametric Maps in Orthanc exactly once", async () => {
    // Orthanc accepts C-STORE from any AE (the fixture's DicomAlwaysAllowStore) and sends nothing to the plugin here.
    orthanc = await startOrthanc({ dir: join(tmp.dir, "orthanc") });
    const dataDir = join(tmp.dir, "crash-data");
    const configPath = join(tmp.dir, "crash.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        dataDir,
        logLevel: "info",
        model: { dir: modelDir },
        // Port 0: the service takes a free one (serve() reads it from "listener ready"); the restart may take another.
        dicom: { aeTitle: AET, port: 0, acceptedSopClasses: ACCEPTED },
        intake: { stableAgeSeconds: 1 },
        pipeline: { concurrency: 2 },
        export: { destinations: [{ aeTitle: orthanc.aet, host: "127.0.0.1", port: orthanc.dicomPort }], retryInitialSeconds: 0.5, retryMaxSeconds: 2 },
        api: { httpPort: 0, tokens: ["crash-test-token-0123456789"] },
      }),
    );
    const studies = reUidStudies(tmp.dir, 50);
    const logPath = join(tmp.dir, "crash-serve.log");
    const first = await serve(configPath, logPath);
    let child = first.child;
    const sent = await storescu({ port: first.dicomPort, aec: AET, cfg, files: studies.map((s) => s.path) });
    expect(sent.code, sent.log.slice(-2000)).toBe(0);
    expect(sent.log.match(/Received Store Response \(Success\)/g)).toHaveLength(50);

    const store = openSqliteStore(join(dataDir, "store.sqlite"));
    try {
      // Busy: some studies finished, others still queued or being processed.
      await waitFor("a few studies exported", async () => (await store.countsByState()).exported >= 3, 120_000, 100);
      const before = await store.countsByState();
      expect(before.queued + before.processing + before.done).toBeGreaterThan(0);
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));

      ({ child } = await serve(configPath, logPath));
      await waitFor("all 50 studies exported", async () => (await store.countsByState()).exported === 50, 400_000, 500);
      expect(await store.countsByState()).toMatchObject({ exported: 50, failed: 0, rejected: 0 });
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    for (const s of studies) {
      const rec = (await store.get(s.studyInstanceUid))!;
      const instances = await orthancStudyInstances(orthanc, s.studyInstanceUid);
      const uids = instances.map((i) => i.sopInstanceUid).sort();
      expect(uids, s.studyInstanceUid).toEqual([rec.outputs!.sr!, ...rec.outputs!.sc!, ...rec.outputs!.pm!].sort());
    }
    await store.close();
  }, 600_000);

  it("PACS down: results wait (not exported) until Orthanc is back on the same ports, then all arrive", async () => {
    await orthanc?.stop();
    const port = await freePort();
    const httpPort = await freePort();
    const dicomPort = await freePort();
    const orthancDir = join(tmp.dir, "orthanc-outage");
    const modalities = { cxr: [AET, "127.0.0.1", port] as [string, string, number] };
    orthanc = await startOrthanc({ dir: orthancDir, httpPort, dicomPort, modalities });
    await orthanc.stop();
    const classifier = await Classifier.load(modelDir);
    const config = resolveConfig({
      dataDir: join(tmp.dir, "outage-data"),
      model: { dir: modelDir },
      dicom: { aeTitle: AET, port, acceptedSopClasses: ACCEPTED },
      intake: { stableAgeSeconds: 1 },
      export: { destinations: [{ aeTitle: "ORTHANC", host: "127.0.0.1", port: dicomPort }], retryInitialSeconds: 0.5, retryMaxSeconds: 2, timeoutSeconds: 5 },
    });
    const service = await startService(config, { logger: pino({ level: "silent" }), classifier, api: false });
    try {
      const files = ["test1.dcm", "test2.dcm", "test3.dcm"].map((f) => asNewStudy(join(SHARED_DICOM, f), join(tmp.dir, `outage-${f}`)));
      const studies = files.map((f) => String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID));
      expect((await storescu({ port, aec: AET, cfg, files })).code).toBe(0);
      const exportsOf = (store: Store) => Promise.all(studies.map((s) => store.exports(s)));
      await waitFor("every study failed to export at least twice", async () => (await exportsOf(service.store)).every((ex) => ex.length > 0 && ex.every((e) => e.attempts >= 2)), 90_000);
      for (const s of studies) {
        const rec = (await service.store.get(s))!;
        expect(rec.state).toBe("done");
        expect(rec.reason).toMatch(/export failed/);
        expect((await service.store.exports(s)).every((e) => !e.sent && e.lastError)).toBe(true);
      }
      orthanc = await startOrthanc({ dir: orthancDir, httpPort, dicomPort, modalities });
      await waitFor("all exported after the PACS came back", async () => (await Promise.all(studies.map((s) => service.store.get(s)))).every((r) => r?.state === "exported"), 60_000);
      for (const s of studies) {
        const rec = (await service.store.get(s))!;
        expect(rec.history.filter((h) => h.state === "exported")).toHaveLength(1);
        const uids = (await orthancStudyInstances(orthanc, s)).map((i) => i.sopInstanceUid).sort();
        expect(uids).toEqual([rec.outputs!.sr!, ...rec.outputs!.sc!, ...rec.outputs!.pm!].sort());
      }
    } finally {
      await service.close();
      await classifier.close();
    }
  }, 300_000);
});
