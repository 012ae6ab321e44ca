import { copyFileSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { readModelCard, weightsSha256, deviceUidFor, CARD_FILE } from "../../src/model/card.ts";
import { buildDenseNet121Model, buildDenseNet121Onnx, denseNet121Params, featureGridSize, randomDenseNet121Weights, trunkWeights } from "../../src/model/densenet121.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { readModelWeights, verifyModelWeights } from "../../src/model/model-dir.ts";
import { decodeModel } from "../../src/model/onnx-builder.ts";
import { tempDir } from "../helpers/tmp.ts";

const tmp = tempDir("cxr-model-");
afterAll(() => tmp.cleanup());

/** A smooth, deterministic test image in roughly ImageNet-normalised units. */
function testImage(batch: number, size: number): Float32Array {
  const x = new Float32Array(batch * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = 2 * Math.sin(i * 0.0007) + Math.cos(i * 0.013);
  return x;
}

async function run(bytes: Uint8Array, batch: number, size: number): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    return (await session.run({ image: new ort.Tensor("float32", testImage(batch, size), [batch, 3, size, size]) })) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

describe("DenseNet121-14 ONNX graph", () => {
  it("has Keras DenseNet121's parameter count (7,037,504 trunk + 14,350 head)", () => {
    const count = (ps: ReturnType<typeof denseNet121Params>) => ps.reduce((a, p) => a + p.dims.reduce((x, y) => x * y, 1), 0);
    // Keras DenseNet121(include_top=False).count_params() == 7,037,504 (incl. BN moving statistics).
    expect(count(denseNet121Params(0))).toBe(7_037_504);
    expect(count(denseNet121Params(14)) - count(denseNet121Params(0))).toBe(1024 * 14 + 14);
  });

  it("runs at 224 in onnxruntime: shapes, finite, not saturated, features after ReLU", async () => {
    const out = await run(buildDenseNet121Onnx({ inputSize: 224, weights: randomDenseNet121Weights(1) }), 1, 224);
    expect(out.probabilities!.dims).toEqual([1, 14]);
    expect(out.features!.dims).toEqual([1, 1024, 7, 7]);
    const p = out.probabilities!.data as Float32Array;
    const feats = out.features!.data as Float32Array;
    expect([...p].every((v) => Number.isFinite(v) && v > 0.01 && v < 0.99)).toBe(true);
    // Random Keras init with BN at identity keeps activations small: probabilities sit near 0.5 but do differ.
    expect(Math.max(...p) - Math.min(...p)).toBeGreaterThan(0.01);
    expect([...feats].every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    expect(feats.filter((v) => v > 0).length).toBeGreaterThan(feats.length / 10);
  });

  it("runs at 320 with a batch of 2 (feature grid 10x10)", async () => {
    expect(featureGridSize(320)).toBe(10);
    const out = await run(buildDenseNet121Onnx({ inputSize: 320, weights: randomDenseNet121Weights(2) }), 2, 320);
    expect(out.probabilities!.dims).toEqual([2, 14]);
    expect(out.features!.dims).toEqual([2, 1024, 10, 10]);
  });

  it("is deterministic per seed; different seeds give different weights and outputs", async () => {
    const a = buildDenseNet121Model({ inputSize: 64, weights: randomDenseNet121Weights(5) });
    const b = buildDenseNet121Model({ inputSize: 64, weights: randomDenseNet121Weights(5) });
    const c = buildDenseNet121Model({ inputSize: 64, weights: randomDenseNet121Weights(6) });
    expect(weightsSha256(a)).toBe(weightsSha256(b));
    expect(weightsSha256(a)).not.toBe(weightsSha256(c));
    const pa = (await run(buildDenseNet121Onnx({ inputSize: 64, weights: randomDenseNet121Weights(5) }), 1, 64)).probabilities!.data as Float32Array;
    const pa2 = (await run(buildDenseNet121Onnx({ inputSize: 64, weights: randomDenseNet121Weights(5) }), 1, 64)).probabilities!.data as Float32Array;
    const pc = (await run(buildDenseNet121Onnx({ inputSize: 64, weights: randomDenseNet121Weights(6) }), 1, 64)).probabilities!.data as Float32Array;
    expect([...pa2]).toEqual([...pa]);
    expect(Math.max(...[...pa].map((v, i) => Math.abs(v - pc[i]!)))).toBeGreaterThan(1e-3);
  });

  it("builds the trunk alone (image -> features) and refuses weights it does not use", async () => {
    const w = randomDenseNet121Weights(3);
    const model = buildDenseNet121Model({ inputSize: 64, weights: trunkWeights(w), part: "trunk" });
    expect(model.graph!.output!.map((o) => o.name)).toEqual(["features"]);
    const out = await run(buildDenseNet121Onnx({ inputSize: 64, weights: trunkWeights(w), part: "trunk" }), 1, 64);
    expect(out.features!.dims).toEqual([1, 1024, 2, 2]);
    const withPool4 = await run(buildDenseNet121Onnx({ inputSize: 64, weights: trunkWeights(w), part: "trunk", extraOutputs: ["pool4_pool"] }), 1, 64);
    expect(withPool4.pool4_pool!.dims).toEqual([1, 512, 2, 2]);
    expect([...(withPool4.features!.data as Float32Array)]).toEqual([...(out.features!.data as Float32Array)]);
    expect(() => buildDenseNet121Model({ inputSize: 64, weights: w, extraOutputs: ["pool9"] })).toThrow(/extra output pool9: no such node/);
    expect(() => buildDenseNet121Model({ inputSize: 64, weights: w, part: "trunk" })).toThrow(/not used by the trunk graph: predictions\/kernel/);
    const bad = new Map(w);
    bad.set("conv1/conv/kernel", { dims: [64, 3, 3, 3], data: new Float32Array(64 * 27) });
    expect(() => buildDenseNet121Model({ inputSize: 64, weights: bad })).toThrow(/conv1\/conv\/kernel has shape \[64,3,3,3\], expected \[64,3,7,7\]/);
  });
});

describe("cxr model init / info and the model card", () => {
  it("init writes model.onnx + a valid card whose Device UID follows the weights", async () => {
    const out = join(tmp.dir, "init64");
    expect(await main(["node", "cxr", "model", "init", "--input-size", "64", "--seed", "11", "--out", out])).toBe(0);
    const card = readModelCard(out);
    expect(card.labels.map((l) => l.name)).toEqual([...NIH_LABELS]);
    expect(card.labels[0]!.code).toEqual({ value: "8186001", scheme: "SCT", meaning: "Cardiomegaly" });
    expect(card.labels.every((l) => l.threshold === 0.5 && l.thresholdMethod === "default — not calibrated")).toBe(true);
    expect(card.input.size).toBe(64);
    expect(card.training.summary).toMatch(/^untrained — random weights \(seed 11/);
    const model = decodeModel(readFileSync(join(out, "model.onnx")));
    expect(card.weightsSha256).toBe(weightsSha256(model));
    expect(card.deviceUid).toBe(deviceUidFor(card.weightsSha256));
    // Same seed, same UID; another seed, another UID.
    const again = join(tmp.dir, "init64-again");
    const other = join(tmp.dir, "init64-other");
    await main(["node", "cxr", "model", "init", "--input-size", "64", "--seed", "11", "--out", again]);
    await main(["node", "cxr", "model", "init", "--input-size", "64", "--seed", "12", "--out", other]);
    expect(readModelCard(again).deviceUid).toBe(card.deviceUid);
    expect(readModelCard(other).deviceUid).not.toBe(card.deviceUid);
    // The weights read back are the seeded ones.
    const w = readModelWeights(join(out, "model.onnx"));
    expect([...w.get("conv1/conv/kernel")!.data]).toEqual([...randomDenseNet121Weights(11).get("conv1/conv/kernel")!.data]);
  });

  it("info prints the card; bad cards give errors naming the file and the fields", async () => {
    const out = join(tmp.dir, "init64");
    const chunks: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (chunks.push(String(s)), true)) as typeof process.stdout.write;
    try {
      expect(await main(["node", "cxr", "model", "info", out])).toBe(0);
    } finally {
      process.stdout.write = orig;
    }
    expect(chunks.join("")).toMatch(/Pleural_Thickening\s+SCT 78381009/);
    // A model file that is not the card's is caught.
    const swapped = join(tmp.dir, "swapped");
    mkdirSync(swapped, { recursive: true });
    copyFileSync(join(out, CARD_FILE), join(swapped, CARD_FILE));
    copyFileSync(join(tmp.dir, "init64-other", "model.onnx"), join(swapped, "model.onnx"));
    expect(() => verifyModelWeights(swapped, readModelCard(swapped))).toThrow(/swapped\/model\.onnx: weights SHA-256 [0-9a-f]{64} differs from the card's/);
    expect(await main(["node", "cxr", "model", "info", swapped])).toBe(1);

    const bad = join(tmp.dir, "bad-card");
    mkdirSync(bad, { recursive: true });
    const card = JSON.parse(readFileSync(join(out, CARD_FILE), "utf8")) as Record<string, unknown>;
    writeFileSync(join(bad, CARD_FILE), JSON.stringify({ ...card, weightsSha256: "xyz", input: { ...(card.input as object), layout: "CHW" }, labels: [] }));
    expect(() => readModelCard(bad)).toThrow(/bad-card\/model-card\.json: invalid model card — /);
    for (const problem of [/weightsSha256: must be 64 lowercase hex digits/, /input\.layout: Invalid option: expected one of "NCHW"\|"NHWC"/, /labels: must list at least one label/]) {
      expect(() => readModelCard(bad)).toThrow(problem);
    }
    writeFileSync(join(bad, CARD_FILE), JSON.stringify({ ...card, deviceUid: "1.2.3" }));
    expect(() => readModelCard(bad)).toThrow(/deviceUid 1\.2\.3 is not the one derived from weightsSha256/);
    writeFileSync(join(bad, CARD_FILE), "{");
    expect(() => readModelCard(bad)).toThrow(/model-card\.json: not valid JSON/);
    expect(() => readModelCard(join(tmp.dir, "nowhere"))).toThrow(/nowhere\/model-card\.json: no model card/);
  });
});
