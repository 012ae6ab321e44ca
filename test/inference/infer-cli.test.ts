import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPresentationImage } from "../../src/image/presentation.ts";
import { toModelTensor } from "../../src/image/tensor.ts";
import { readModelCard } from "../../src/model/card.ts";
import { requireSharedData, SHARED_DICOM, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const repo = join(import.meta.dirname, "../..");
const cxr = (...args: string[]) => spawnSync(process.execPath, [join(repo, "bin/cxr.js"), ...args], { cwd: repo, encoding: "utf8", timeout: 300_000 });

const hasData = requireSharedData();
const tmp = tempDir("cxr-infer-cli-");
const modelDir = join(tmp.dir, "densenet224");
const outDir = join(tmp.dir, "out");
const inputs = hasData ? [join(SHARED_NIH, "images/00000001_000.png"), join(SHARED_NIH, "images/00000020_001.png"), join(SHARED_DICOM, "test1.dcm"), join(SHARED_DICOM, "rsna_cr_jpeg_baseline.dcm")] : [];
const broken = join(tmp.dir, "broken.png");
let run: ReturnType<typeof cxr>;

describe.runIf(hasData)("cxr infer with a real DenseNet121-14 on real NIH PNGs and DICOM", () => {
  beforeAll(() => {
    const init = cxr("model", "init", "--input-size", "224", "--seed", "5", "--out", modelDir);
    expect(init.status, init.stderr).toBe(0);
    writeFileSync(broken, "this is not an image");
    run = cxr("infer", inputs[0]!, broken, ...inputs.slice(1), "--model", modelDir, "--out", outDir, "--features", "--batch", "2");
  });
  afterAll(() => tmp.cleanup());

  it("processes every good input, names the bad one, and exits non-zero at the end", () => {
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain(`${broken}:`);
    expect(run.stderr).toMatch(/1 of 5 input\(s\) failed: .*broken\.png/);
    expect(existsSync(join(outDir, "broken.json"))).toBe(false);
    for (const input of inputs) expect(existsSync(join(outDir, `${input.split("/").pop()!.replace(/\.(png|dcm)$/, "")}.json`)), input).toBe(true);
  });

  it("writes probabilities equal to an independent InferenceSession.run on the same preprocessed tensor (1e-5)", async () => {
    const card = readModelCard(modelDir);
    const session = await ort.InferenceSession.create(join(modelDir, "model.onnx"));
    try {
      for (const input of inputs) {
        const name = input.split("/").pop()!.replace(/\.(png|dcm)$/, "");
        const doc = JSON.parse(readFileSync(join(outDir, `${name}.json`), "utf8")) as { findings: { label: string; probability: number; positive: boolean; threshold: number }[]; model: { name: string; version: string; deviceUid: string } };
        expect(doc.findings.map((f) => f.label)).toEqual(card.labels.map((l) => l.name));
        expect(doc.model).toMatchObject({ name: card.name, version: card.version, deviceUid: card.deviceUid });
        const img = await loadPresentationImage(input);
        const t = toModelTensor(img, card.input);
        const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor("float32", t, [1, 3, 224, 224]) });
        const ref = out[card.outputs.probabilities]!.data as Float32Array;
        doc.findings.forEach((f, k) => {
          expect(Math.abs(f.probability - ref[k]!), `${name} ${f.label}`).toBeLessThanOrEqual(1e-5);
          expect(f.positive).toBe(f.probability >= f.threshold);
        });
      }
    } finally {
      await session.release();
    }
  });

  it("writes 14 8-bit grayscale heatmaps (distinct where a label has evidence) at each input image's size, and features only when asked", async () => {
    const card = readModelCard(modelDir);
    for (const input of inputs) {
      const name = input.split("/").pop()!.replace(/\.(png|dcm)$/, "");
      const img = await loadPresentationImage(input);
      const pixels: Buffer[] = [];
      for (const l of card.labels) {
        const path = join(outDir, `${name}.heatmap.${l.name}.png`);
        const meta = await sharp(path).metadata();
        expect([meta.width, meta.height, meta.channels, meta.depth], path).toEqual([img.width, img.height, 1, "uchar"]);
        pixels.push(await sharp(path).raw().toBuffer());
      }
      // With random weights a label can have no positive evidence anywhere (ReLU(sum_k W_ck A_k) <= 0): its map
      // is all zeros, by definition. Every map with evidence differs from every other.
      const withEvidence = pixels.filter((p) => p.some((v) => v > 0));
      expect(withEvidence.length, name).toBeGreaterThanOrEqual(card.labels.length / 2);
      expect(new Set(withEvidence.map((p) => p.toString("base64"))).size, name).toBe(withEvidence.length);
      const features = JSON.parse(readFileSync(join(outDir, `${name}.features.json`), "utf8")) as { channels: number; height: number; width: number; pooled: number[]; map: number[] };
      expect([features.channels, features.height, features.width]).toEqual([1024, 7, 7]);
      expect(features.pooled).toHaveLength(1024);
      expect(features.map).toHaveLength(1024 * 49);
    }
    const plain = cxr("infer", inputs[0]!, "--model", modelDir, "--out", join(tmp.dir, "plain"));
    expect(plain.status, plain.stderr).toBe(0);
    expect(existsSync(join(tmp.dir, "plain", "00000001_000.json"))).toBe(true);
    expect(existsSync(join(tmp.dir, "plain", "00000001_000.features.json"))).toBe(false);
  });
});
