import { afterEach, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { resolveConfig } from "../../src/config/service.ts";
import { destinationName, Exporter } from "../../src/export/exporter.ts";
import type { Classifier } from "../../src/inference/classifier.ts";
import { recoverSpool } from "../../src/intake/recover.ts";
import { SqliteStudyStore, type NewInstance } from "../../src/intake/store.ts";
import { freePort } from "../../src/peers/ports.ts";
import { Pipeline } from "../../src/pipeline/pipeline.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { waitFor } from "./helpers.ts";

const STUDY = "1.2.826.0.1.3680043.8.498.1";
const instance: NewInstance = {
  sopInstanceUid: `${STUDY}.1.1`, sopClassUid: "1.2.840.10008.5.1.4.1.1.1.1", studyInstanceUid: STUDY, seriesInstanceUid: `${STUDY}.1`,
  transferSyntaxUid: "1.2.840.10008.1.2.1", path: "/nonexistent/spool.dcm", sha256: "00", size: 1, callingAeTitle: "MODALITY",
  header: { modality: "DX", bodyPartExamined: "CHEST", viewPosition: "PA" },
};
const logger = pino({ level: "silent" });

describe("failures outside the happy path are kept with their reason", () => {
  const cleanups: (() => void | Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function setup(config: Record<string, unknown> = {}) {
    const tmp = tempDir("cxr-failures-");
    const store = new SqliteStudyStore(join(tmp.dir, "store.sqlite"));
    cleanups.push(tmp.cleanup, () => store.close());
    return { dir: tmp.dir, store, config: resolveConfig({ dataDir: tmp.dir, ...config }) };
  }

  it("a store error while a worker takes a study marks it failed (not left 'processing', no unhandled rejection)", async () => {
    const { dir, store, config } = setup();
    store.addInstance(instance);
    store.transition(STUDY, "queued", { from: ["received"] });
    store.instances = () => {
      throw new Error("disk I/O error");
    };
    const classifier = { card: { deviceUid: "2.25.1" } } as unknown as Classifier;
    const pipeline = new Pipeline({ store, config, classifier, logger, outputsDir: join(dir, "o"), heatmapsDir: join(dir, "h"), quarantineDir: join(dir, "q"), destinations: [] });
    pipeline.start();
    cleanups.push(() => pipeline.stop());
    const rec = await waitFor("the study failed", () => (store.get(STUDY)?.state === "failed" ? store.get(STUDY) : undefined), 5000, 20);
    expect(rec.reason).toBe("processing failed: disk I/O error");
  });

  it("a result file that cannot be read is a recorded, retried export failure of its study", async () => {
    const port = await freePort();
    const { store, config } = setup({ export: { destinations: [{ aeTitle: "PACS", host: "127.0.0.1", port }] } });
    store.addInstance(instance);
    const missing = "/nonexistent/result.sr.dcm";
    store.recordResults(STUDY, {
      processedKey: "k", findings: [], heatmaps: [], model: { name: "m", version: "1", deviceUid: "2.25.1", training: "untrained" },
      outputs: [{ sopInstanceUid: "2.25.7", studyInstanceUid: STUDY, kind: "sr", sopClassUid: "1.2.840.10008.5.1.4.1.1.88.34", path: missing }],
      destinations: config.export.destinations.map(destinationName),
    });
    const exporter = new Exporter({ store, config, logger });
    const retryAt = await exporter.exportStudy(STUDY);
    expect(retryAt).toBeGreaterThan(Date.now());
    const rec = store.get(STUDY)!;
    expect(rec.state).toBe("done");
    expect(rec.reason).toMatch(/^export failed \(attempt 1, .*cannot send: .*ENOENT/);
    expect(store.exports(STUDY)).toMatchObject([{ outputUid: "2.25.7", sent: false, attempts: 1, lastError: expect.stringMatching(/ENOENT/) }]);
  });

  it("a spool file recovery cannot read is listed with the quarantine once, where it lies", () => {
    const { dir, store } = setup();
    const studyDir = join(dir, "spool", STUDY);
    mkdirSync(studyDir, { recursive: true });
    const path = join(studyDir, "1.2.3.dcm");
    writeFileSync(path, Buffer.alloc(64));
    expect(recoverSpool(store, join(dir, "spool"), logger)).toBe(0);
    expect(recoverSpool(store, join(dir, "spool"), logger)).toBe(0);
    expect(store.quarantined()).toMatchObject([{ path, studyInstanceUid: STUDY, reason: expect.stringMatching(/^spool file not recoverable: /) }]);
  });

  it.runIf(requireSharedData())("an instance that arrives while its study is processed sends the study back to assembly", async () => {
    const { dir, store, config } = setup({ intake: { stableAgeSeconds: 3600 } });
    store.addInstance({ ...instance, path: join(SHARED_DICOM, "test1.dcm") });
    store.transition(STUDY, "queued", { from: ["received"] });
    const classifier = {
      card: { deviceUid: "2.25.1" },
      infer: async () => {
        // A second image of the study is received during inference; addInstance leaves "processing" alone.
        expect(store.addInstance({ ...instance, sopInstanceUid: `${STUDY}.1.2`, sha256: "01" })).toBe("new");
        throw new Error("inference stopped by the test");
      },
    } as unknown as Classifier;
    const pipeline = new Pipeline({ store, config, classifier, logger, outputsDir: join(dir, "o"), heatmapsDir: join(dir, "h"), quarantineDir: join(dir, "q"), destinations: [] });
    pipeline.start();
    cleanups.push(() => pipeline.stop());
    const rec = await waitFor("the study back in assembly", () => (store.get(STUDY)?.history.length === 5 ? store.get(STUDY) : undefined), 10_000, 20);
    expect(rec.history.map((h) => h.state)).toEqual(["received", "queued", "processing", "failed", "received"]);
    expect(rec.state).toBe("received");
  });
});
