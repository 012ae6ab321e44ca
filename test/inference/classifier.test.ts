import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PresentationImage } from "../../src/image/presentation.ts";
import { toModelTensor } from "../../src/image/tensor.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { ProviderUnavailableError } from "../../src/inference/providers.ts";
import { readModelCard } from "../../src/model/card.ts";
import { tempDir } from "../helpers/tmp.ts";
import { seededRandom } from "../../src/model/rng.ts";
import { buildSmallModel, writeSmallModelDir } from "./small-model.ts";

function syntheticImage(seed: number, width = 90, height = 75): PresentationImage {
  const rnd = seededRandom(seed);
  const data = new Float32Array(width * height).map((_, i) => Math.min(1, Math.max(0, 0.5 + 0.4 * Math.sin((i % width) / (7 + seed)) * Math.cos(i / width / 5) + 0.1 * (rnd() - 0.5))));
  return { width, height, data, source: { path: `synthetic-${seed}`, kind: "png" }, steps: { modality: "none", voi: "none", inversion: "none" } };
}

const tmp = tempDir("cxr-classifier-");
const model = buildSmallModel({ seed: 3 });
let modelDir: string;
let reference: ort.InferenceSession;

beforeAll(async () => {
  modelDir = writeSmallModelDir(join(tmp.dir, "small"), model, 64);
  reference = await ort.InferenceSession.create(join(modelDir, "model.onnx"));
});
afterAll(async () => {
  await reference.release();
  tmp.cleanup();
});

async function referenceProbabilities(img: PresentationImage): Promise<Float32Array> {
  const card = readModelCard(modelDir);
  const t = toModelTensor(img, card.input);
  const out = await reference.run({ input: new ort.Tensor("float32", t, [1, 3, 64, 64]) });
  return out.probabilities!.data as Float32Array;
}

describe("Classifier on a small conv → GAP → Gemm → sigmoid model", () => {
  it("takes GradCAM's weights from the ONNX dense head, by class", async () => {
    const classifier = await Classifier.load(modelDir);
    try {
      const head = classifier.head;
      expect([head.classes, head.channels]).toEqual([14, model.channels]);
      model.weights.forEach((row, k) => row.forEach((w, c) => expect(head.kernel[c * 14 + k]).toBe(w)));
    } finally {
      await classifier.close();
    }
  });

  it("gives 14 findings in the card's order equal to an independent session.run, and 14 distinct heatmaps", async () => {
    const classifier = await Classifier.load(modelDir);
    try {
      const card = classifier.card;
      const img = syntheticImage(1);
      const result = await classifier.infer(img);
      const ref = await referenceProbabilities(img);
      expect(result.findings.map((f) => f.label)).toEqual(card.labels.map((l) => l.name));
      result.findings.forEach((f, k) => {
        expect(Math.abs(f.probability - ref[k]!)).toBeLessThan(1e-6);
        expect(f.threshold).toBe(card.labels[k]!.threshold);
        expect(f.positive).toBe(f.probability >= f.threshold);
        expect(f.code).toEqual(card.labels[k]!.code);
      });
      // Thresholds 0.30..0.69 against random-weight probabilities: both outcomes occur.
      expect(new Set(result.findings.map((f) => f.positive)).size).toBe(2);
      expect(result.heatmaps).toHaveLength(14);
      expect(result.heatmaps.map((h) => h.label)).toEqual(card.labels.map((l) => l.name));
      const grid = result.heatmaps[0]!;
      expect([grid.width, grid.height]).toEqual([16, 16]); // 64 / stride 4
      for (let a = 0; a < 14; a++) for (let b = a + 1; b < 14; b++) {
        const ha = result.heatmaps[a]!.data, hb = result.heatmaps[b]!.data;
        const d = Math.max(...ha.map((v, p) => Math.abs(v - hb[p]!)));
        // Two labels can both have no positive evidence (all-zero maps); otherwise they must differ.
        if (Math.max(...ha) > 0 || Math.max(...hb) > 0) expect(d, `${card.labels[a]!.name} vs ${card.labels[b]!.name}`).toBeGreaterThan(0.01);
      }
      expect(result.inferenceMs).toBeGreaterThan(0);
    } finally {
      await classifier.close();
    }
  });

  it("batches (one run for several images) and runs worker sessions with the same results as single runs", async () => {
    const imgs = [1, 2, 3, 4, 5].map((s) => syntheticImage(s, 60 + s * 7, 80 - s * 3));
    const single = await Classifier.load(modelDir);
    const batched = await Classifier.load(modelDir, { batchSize: 4 });
    const pooled = await Classifier.load(modelDir, { batchSize: 3, poolSize: 2, threads: 1, keepFeatures: true });
    try {
      expect(pooled.batchSize).toBe(3);
      // Five images submitted together with batches of 4: two session runs.
      const inBatches = await batched.inferBatch(imgs);
      expect(batched.runStats).toEqual({ runs: 2, images: 5 });
      const one: Awaited<ReturnType<Classifier["infer"]>>[] = [];
      for (const img of imgs) one.push(await single.infer(img));
      const many = await pooled.inferBatch(imgs);
      expect(pooled.runStats).toEqual({ runs: 2, images: 5 }); // [3] on one session, [2] on the other
      for (const results of [many, inBatches]) results.forEach((r, i) => {
        r.findings.forEach((f, k) => expect(Math.abs(f.probability - one[i]!.findings[k]!.probability)).toBeLessThan(1e-6));
        r.heatmaps.forEach((h, k) => h.data.forEach((v, p) => expect(Math.abs(v - one[i]!.heatmaps[k]!.data[p]!)).toBeLessThan(1e-5)));
      });
      for (const r of many) {
        expect(r.features?.channels).toBe(model.channels);
        expect(r.features?.data.length).toBe(model.channels * 16 * 16);
      }
      // Different images, different probabilities: the batch was split back correctly.
      expect(many[0]!.findings[0]!.probability).not.toBe(many[1]!.findings[0]!.probability);
    } finally {
      await Promise.all([single.close(), batched.close(), pooled.close()]);
    }
  });

  it("refuses a model.onnx whose weights are not the ones its card names (results would carry the wrong Device UID)", async () => {
    const swapped = join(tmp.dir, "swapped");
    writeSmallModelDir(swapped, model, 64);
    writeFileSync(join(swapped, "model.onnx"), buildSmallModel({ seed: 4 }).bytes);
    await expect(Classifier.load(swapped)).rejects.toThrow(/swapped\/model\.onnx: weights SHA-256 [0-9a-f]{64} differs from the card's/);
  });

  it("rejects runs on a session worker that has exited, and still closes", async () => {
    const pooled = await Classifier.load(modelDir, { poolSize: 2, threads: 1 });
    // The worker thread of the second session, reached through the pool's private runners.
    const worker = (pooled as unknown as { pool: { runners: { worker?: import("node:worker_threads").Worker }[] } }).pool.runners[1]!.worker!;
    await worker.terminate();
    // The pool hands the next image to the most recently idle session: the dead worker's.
    await expect(pooled.infer(syntheticImage(1))).rejects.toThrow(/session worker exited/);
    await pooled.close(); // resolves although the worker is gone (it used to wait for an exit that had already happened)
  });

  it("fails clearly for a provider this machine lacks, and falls back only when asked", async () => {
    // The CUDA provider libraries are fetched by ORT's installer only on request; setup skips them.
    const err = await Classifier.load(modelDir, { provider: "cuda" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderUnavailableError);
    expect((err as Error).message).toMatch(/"cuda" is unavailable: libonnxruntime_providers_(shared|cuda)\.so/);
    const fallback = await Classifier.load(modelDir, { provider: "cuda", allowFallback: true });
    try {
      expect(fallback.provider).toBe("cpu");
      expect(fallback.fallbackReason).toMatch(/cuda/);
    } finally {
      await fallback.close();
    }
  });

  it("names webgpu and the reason when Dawn finds no Vulkan adapter", () => {
    // A child process: the Vulkan ICD is chosen when ORT's Dawn starts, so the environment must be set before.
    const script = `import { Classifier } from "./src/inference/classifier.ts";
      Classifier.load(${JSON.stringify(modelDir)}, { provider: "webgpu" }).then(() => console.log("STARTED"), (e) => console.log("ERROR " + e.message));`;
    const env: NodeJS.ProcessEnv = { ...process.env, VK_ICD_FILENAMES: join(tmp.dir, "no-such-icd.json") };
    delete env.LD_LIBRARY_PATH;
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { env, encoding: "utf8", timeout: 60_000, cwd: join(import.meta.dirname, "../..") });
    expect(child.stdout).toMatch(/ERROR execution provider "webgpu" is unavailable: .*adapter/);
  });
});
