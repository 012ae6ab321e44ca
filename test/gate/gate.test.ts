import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { readDicom } from "../../src/dicom/read.ts";
import { ImageGate, judgeStatistics, readGateModel, DEFAULT_GATE_LIMITS } from "../../src/gate/gate.ts";
import { imageStatistics } from "../../src/gate/statistics.ts";
import { invert, rotate } from "../../src/gate/transforms.ts";
import { loadPresentationImage, presentationFromDicom, type PresentationImage } from "../../src/image/presentation.ts";
import { requireSharedData, SHARED_DICOM, SHARED_NIH } from "../helpers/shared-data.ts";

const img = (w: number, h: number, f: (x: number, y: number) => number): PresentationImage => ({
  width: w, height: h, data: Float32Array.from({ length: w * h }, (_, i) => f(i % w, Math.floor(i / w))), source: { path: "synthetic", kind: "png" }, steps: { modality: "", voi: "", inversion: "none" },
});

describe("gate transforms and statistics", () => {
  it("rotate is clockwise and composes to the identity; invert is 1 - v", () => {
    const a = img(3, 2, (x, y) => (y * 3 + x) / 10);
    const r = rotate(a, 90);
    expect([r.width, r.height]).toEqual([2, 3]);
    // clockwise: the bottom-left pixel (0,1) = 0.3 goes to the top-left
    expect(Array.from(r.data.slice(0, 2)).map((v) => +v.toFixed(2))).toEqual([0.3, 0]);
    expect(Array.from(rotate(rotate(r, 180), 90).data)).toEqual(Array.from(a.data));
    expect(Array.from(rotate(r, 270).data)).toEqual(Array.from(a.data));
    expect(invert(a).data[0]).toBe(1);
  });

  it("statistics checks name the measured value and the limit", () => {
    expect(judgeStatistics(imageStatistics(img(128, 300, (x) => x / 128)), DEFAULT_GATE_LIMITS)?.reason).toBe("too small (128x300 < 256 px)");
    expect(judgeStatistics(imageStatistics(img(300, 300, () => 0.5)), DEFAULT_GATE_LIMITS)?.reason).toBe("blank or near-constant image (std 0.000 < 0.02)");
    expect(judgeStatistics(imageStatistics(img(300, 300, (x) => Math.floor(x / 30) / 9)), DEFAULT_GATE_LIMITS)?.reason).toBe("too few grey levels (10 < 32)");
    expect(judgeStatistics(imageStatistics(img(300, 300, (x, y) => ((x * 7 + y * 13) % 300) / 300)), DEFAULT_GATE_LIMITS)).toBeUndefined();
  });

  it("the shipped gate model is intact and says how its operating points were chosen", () => {
    const m = readGateModel();
    expect(m.spec.outputs).toEqual(["inverted", "rotated90", "rotated180", "rotated270"]);
    expect(m.spec.thresholds.method).toMatch(/validation split/);
    expect(m.typicality).toHaveLength(5);
  });
});

describe.runIf(requireSharedData())("the gate on held-out real images", () => {
  let gate: ImageGate;
  beforeAll(async () => {
    gate = await ImageGate.load();
  });
  afterAll(() => gate?.close());

  it("a test-split NIH film passes; its inverted and rotated copies fail with the fault named", async () => {
    // 00000138_002.png is in the test split of labels.csv (never used to build the gate)
    const film = await loadPresentationImage(join(SHARED_NIH, "images", "00000138_002.png"));
    expect((await gate.check(film)).pass).toBe(true);
    expect(await gate.check(invert(film))).toMatchObject({ pass: false, check: "inverted", reason: expect.stringMatching(/^inverted polarity \(score [01]\.\d\d ≥ 0\.83\)$/) });
    expect(await gate.check(rotate(film, 180))).toMatchObject({ pass: false, check: "rotated", reason: expect.stringMatching(/^rotated by 180°/) });
  });

  it("the RSNA CR passes, its fake MONOCHROME1 copy is inverted, the hip CR is not a chest radiograph", async () => {
    const check = async (f: string) => gate.check(await presentationFromDicom(readDicom(join(SHARED_DICOM, f))));
    expect((await check("rsna_cr_jpeg_baseline.dcm")).pass).toBe(true);
    expect(await check("rsna_cr_jpeg_baseline_fake_monochrome1.dcm")).toMatchObject({ pass: false, check: "inverted" });
    expect(await check("RG2_JPLL.dcm")).toMatchObject({ pass: false, check: "not a chest radiograph" });
    expect(await check("CT_small.dcm")).toMatchObject({ pass: false, check: "too small" });
  });
});
