import { afterEach, describe, expect, it } from "vitest";
import { join } from "node:path";
import { pino } from "pino";
import { resolveConfig } from "../../src/config/service.ts";
import { readDicom } from "../../src/dicom/read.ts";
import type { DriftObservation } from "../../src/drift/monitor.ts";
import type { GateOutcome } from "../../src/gate/gate.ts";
import { imageStatistics } from "../../src/gate/statistics.ts";
import type { PresentationImage } from "../../src/image/presentation.ts";
import type { Classifier } from "../../src/inference/classifier.ts";
import { extractHeader } from "../../src/intake/header.ts";
import { Pipeline } from "../../src/pipeline/pipeline.ts";
import { openSqliteStore } from "../../src/store/index.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { waitFor } from "../service/helpers.ts";

// What the pipeline tells drift monitoring about a real file: the header kept at intake (modality,
// manufacturer) and the decoded file's pixel spacing and bits stored, with the gate's outcome.
describe.runIf(requireSharedData())("the pipeline's drift observations carry the input properties", () => {
  const cleanups: (() => void | Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function run(file: string, gate: (img: PresentationImage) => GateOutcome): Promise<DriftObservation> {
    const tmp = tempDir("cxr-drift-pipeline-");
    const store = openSqliteStore(join(tmp.dir, "store.sqlite"), { nodeId: "node-a" });
    cleanups.push(tmp.cleanup, () => store.close());
    const path = join(SHARED_DICOM, file);
    const ds = readDicom(path, { withPixelData: false }).dataset;
    const h = extractHeader(ds);
    await store.addInstance({
      sopInstanceUid: h.sopInstanceUid!, sopClassUid: h.sopClassUid!, studyInstanceUid: h.studyInstanceUid!, seriesInstanceUid: h.seriesInstanceUid!,
      transferSyntaxUid: "1.2.840.10008.1.2.1", path, sha256: "00", size: 1, callingAeTitle: "MODALITY", header: h.header,
    });
    await store.transition(h.studyInstanceUid!, "queued", { from: ["received"] });
    const observed: DriftObservation[] = [];
    // The model is not what is tested here: it answers one fixed finding, then the test has what it needs.
    const classifier = { card: { deviceUid: "2.25.1" }, infer: async () => ({ findings: [{ label: "Effusion", probability: 0.4 }], inferenceMs: 1 }) } as unknown as Classifier;
    const pipeline = new Pipeline({
      store, config: resolveConfig({ dataDir: tmp.dir }), classifier, logger: pino({ level: "silent" }),
      gate: { check: async (img) => gate(img) }, drift: { observe: (o) => observed.push(o) },
      outputsDir: join(tmp.dir, "o"), heatmapsDir: join(tmp.dir, "h"), quarantineDir: join(tmp.dir, "q"), destinations: [],
    });
    await pipeline.start();
    cleanups.push(() => pipeline.stop());
    return waitFor("a drift observation", async () => observed[0], 20_000, 20);
  }

  it("a CR the gate stops: modality, pixel spacing and bits stored from the file, the failed check; no manufacturer (the file has none)", async () => {
    const o = await run("rsna_cr_jpeg_baseline.dcm", (img) => ({ pass: false, check: "rotated", reason: "rotated (test)", statistics: imageStatistics(img) }));
    expect(o.input).toEqual({ modality: "CR", pixelSpacing: 0.168, bitsStored: 8 });
    expect(o.gate).toBe("rotated");
    expect(o.probabilities).toBeUndefined();
  });

  it("a DX the gate passes: its properties, 'passed' and the model's probabilities", async () => {
    const ds = readDicom(join(SHARED_DICOM, "test1.dcm"), { withPixelData: false }).dataset;
    const o = await run("test1.dcm", (img) => ({ pass: true, statistics: imageStatistics(img) }));
    expect(o.input?.modality).toBe("DX");
    expect(o.input?.bitsStored).toBe(Number(ds.BitsStored));
    expect(o.gate).toBe("passed");
    expect(o.probabilities).toEqual({ Effusion: 0.4 });
  });
});
