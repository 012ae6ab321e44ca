import { afterEach, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { resolveConfig } from "../../src/config/service.ts";
import { destinationName, Exporter } from "../../src/export/exporter.ts";
import type { Classifier } from "../../src/inference/classifier.ts";
import { recoverSpool } from "../../src/intake/recover.ts";
import { openSqliteStore, type NewInstance, type Store } from "../../src/store/index.ts";
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
    const store = openSqliteStore(join(tmp.dir, "store.sqlite"), { nodeId: "node-a" });
    cleanups.push(tmp.cleanup, () => store.close());
    return { dir: tmp.dir, store, config: resolveConfig({ dataDir: tmp.dir, ...config }) };
  }

  it("a store error while a worker takes a study marks it failed (not left 'processing', no unhandled rejection)", async () => {
    const { dir, store, config } = setup();
    await store.addInstance(instance);
    await store.transition(STUDY, "queued", { from: ["received"] });
    store.instances = () => Promise.reject(new Error("disk I/O error"));
    const classifier = { card: { deviceUid: "2.25.1" } } as unknown as Classifier;
    const pipeline = new Pipeline({ store, config, classifier, logger, outputsDir: join(dir, "o"), heatmapsDir: join(dir, "h"), quarantineDir: join(dir, "q"), destinations: [] });
    await pipeline.start();
    cleanups.push(() => pipeline.stop());
    const rec = await waitFor("the study failed", async () => ((await store.get(STUDY))?.state === "failed" ? store.get(STUDY) : undefined), 5000, 20);
    expect(rec!.reason).toBe("processing failed: disk I/O error");
  });

  it("a result file that cannot be read is a recorded, retried export failure of its study", async () => {
    const port = await freePort();
    const { store, config } = setup({ export: { destinations: [{ aeTitle: "PACS", host: "127.0.0.1", port }] } });
    await store.addInstance(instance);
    await store.transition(STUDY, "queued", { from: ["received"] });
    expect(await store.claimNext()).toBe(STUDY);
    const missing = "/nonexistent/result.sr.dcm";
    await store.recordResults(STUDY, {
      processedKey: "k", findings: [], heatmaps: [], model: { name: "m", version: "1", deviceUid: "2.25.1", training: "untrained" },
      outputs: [{ sopInstanceUid: "2.25.7", studyInstanceUid: STUDY, kind: "sr", sopClassUid: "1.2.840.10008.5.1.4.1.1.88.34", path: missing }],
      destinations: config.export.destinations.map(destinationName),
    });
    const exporter = new Exporter({ store, config, logger });
    const retryAt = await exporter.exportStudy(STUDY);
    expect(retryAt).toBeGreaterThan(Date.now());
    const rec = (await store.get(STUDY))!;
    expect(rec.state).toBe("done");
    expect(rec.reason).toMatch(/^export failed \(attempt 1, .*cannot send: .*ENOENT/);
    expect(await store.exports(STUDY)).toMatchObject([{ outputUid: "2.25.7", sent: false, attempts: 1, lastError: expect.stringMatching(/ENOENT/) }]);
  });

  it("a spool file recovery cannot read is listed with the quarantine once, where it lies", async () => {
    const { dir, store } = setup();
    const studyDir = join(dir, "spool", STUDY);
    mkdirSync(studyDir, { recursive: true });
    const path = join(studyDir, "1.2.3.dcm");
    writeFileSync(path, Buffer.alloc(64));
    expect(await recoverSpool(store, join(dir, "spool"), logger)).toBe(0);
    expect(await recoverSpool(store, join(dir, "spool"), logger)).toBe(0);
    expect(await store.quarantined()).toMatchObject([{ path, studyInstanceUid: STUDY, reason: expect.stringMatching(/^spool file not recoverable: /) }]);
  });

  it.runIf(requireSharedData())("an instance that arrives while its study is processed sends the study back to assembly", async () => {
    const { dir, store, config } = setup({ intake: { stableAgeSeconds: 3600 } });
    await store.addInstance({ ...instance, path: join(SHARED_DICOM, "test1.dcm") });
    await store.transition(STUDY, "queued", { from: ["received"] });
    const classifier = {
      card: { deviceUid: "2.25.1" },
      infer: async () => {
        // A second image of the study is received during inference; addInstance leaves "processing" alone.
        expect(await store.addInstance({ ...instance, sopInstanceUid: `${STUDY}.1.2`, sha256: "01" })).toBe("new");
        throw new Error("inference stopped by the test");
      },
    } as unknown as Classifier;
    const pipeline = new Pipeline({ store, config, classifier, logger, outputsDir: join(dir, "o"), heatmapsDir: join(dir, "h"), quarantineDir: join(dir, "q"), destinations: [] });
    await pipeline.start();
    cleanups.push(() => pipeline.stop());
    const rec = await waitFor("the study back in assembly", async () => {
      const r = await store.get(STUDY);
      return r?.history.length === 5 ? r : undefined;
    }, 10_000, 20);
    expect(rec.history.map((h) => h.state)).toEqual(["received", "queued", "processing", "failed", "received"]);
    expect(rec.state).toBe("received");
  });

  /** The store refuses `failures` writes of "failed" the way SQLite does on a full disk; everything else goes through. */
  function refuseFailureWrites(store: Store, failures: number): { refused: () => number; restore: () => void } {
    let refused = 0;
    const transition = store.transition.bind(store);
    store.transition = (uid, state, opts) => {
      if (state === "failed" && refused < failures) {
        refused++;
        return Promise.reject(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }));
      }
      return transition(uid, state, opts);
    };
    return { refused: () => refused, restore: () => void (store.transition = transition) };
  }

  const failingClassifier = { card: { deviceUid: "2.25.1" }, infer: async () => Promise.reject(new Error("inference stopped by the test")) } as unknown as Classifier;

  it.runIf(requireSharedData())("a failure the store cannot record at first (disk full) is written again until it is: the study never stays 'processing'", async () => {
    const { dir, store, config } = setup({ intake: { stableAgeSeconds: 3600 } });
    await store.addInstance({ ...instance, path: join(SHARED_DICOM, "test1.dcm") });
    await store.transition(STUDY, "queued", { from: ["received"] });
    const disk = refuseFailureWrites(store, 3);
    const pipeline = new Pipeline({ store, config, classifier: failingClassifier, logger, outputsDir: join(dir, "o"), heatmapsDir: join(dir, "h"), quarantineDir: join(dir, "q"), destinations: [], failureRetryMs: [20, 40] });
    await pipeline.start();
    cleanups.push(() => pipeline.stop());
    const rec = await waitFor("the failure recorded", async () => {
      const r = await store.get(STUDY);
      return r?.state === "failed" ? r : undefined;
    }, 10_000, 20);
    expect(disk.refused()).toBe(3);
    expect(rec.reason).toMatch(/^inference failed for .*inference stopped by the test/);
    expect(rec.history.map((h) => h.state)).toEqual(["received", "queued", "processing", "failed"]);
  });

  it.runIf(requireSharedData())("a study left 'processing' when the service stopped while its failure could not be written is queued again at the next start", async () => {
    const { dir, store, config } = setup({ intake: { stableAgeSeconds: 3600 } });
    await store.addInstance({ ...instance, path: join(SHARED_DICOM, "test1.dcm") });
    await store.transition(STUDY, "queued", { from: ["received"] });
    const disk = refuseFailureWrites(store, Infinity);
    const paths = { outputsDir: join(dir, "o"), heatmapsDir: join(dir, "h"), quarantineDir: join(dir, "q"), destinations: [] };
    const first = new Pipeline({ store, config, classifier: failingClassifier, logger, ...paths, failureRetryMs: [20] });
    await first.start();
    await waitFor("the failure refused", () => disk.refused() >= 2, 10_000, 20);
    await first.stop();
    expect((await store.get(STUDY))!.state).toBe("processing");
    // The restart: a new pipeline on the same store, and the disk has space again.
    disk.restore();
    const second = new Pipeline({ store, config, classifier: failingClassifier, logger, ...paths });
    await second.start();
    cleanups.push(() => second.stop());
    const rec = await waitFor("queued again, processed and its failure recorded", async () => {
      const r = (await store.get(STUDY))!;
      return r.state === "failed" ? r : undefined;
    }, 10_000, 20);
    expect(rec.history.map((e) => e.state)).toEqual(["received", "queued", "processing", "queued", "processing", "failed"]);
  });
});
