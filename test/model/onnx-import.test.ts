import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { readModelCard } from "../../src/model/card.ts";
import { buildDenseNet121Model, randomDenseNet121Weights } from "../../src/model/densenet121.ts";
import { seededRandom } from "../../src/model/rng.ts";
import { readClassifierHead } from "../../src/model/head.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { importModel } from "../../src/model/import.ts";
import { loadLabelsMap, XRV_PATHOLOGIES } from "../../src/model/onnx-import.ts";
import { decodeModel, encodeModel, f, GraphBuilder } from "../../src/model/onnx-builder.ts";
import { tempDir } from "../helpers/tmp.ts";

const tmp = tempDir("cxr-onnx-import-");
afterAll(() => tmp.cleanup());
const S = 32;

const randoms = (seed: number, n: number, scale: number) => {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
};

/**
 * A tiny stand-in for a PyTorch export: conv trunk -> ReLU -> GlobalAveragePool -> Flatten -> classifier, with
 * torch's naming and layouts (Linear weight [out, in] used by Gemm transB=1, or MatMul + Add).
 * `xrv`: 1 input channel, 18 slots, sigmoid then torchxrayvision's op_norm (piecewise rescale around op_threshs).
 */
function mimicExport(kind: "xrv" | "logits", opts: { gap?: boolean; featuresOutput?: boolean } = {}): Uint8Array {
  const channels = kind === "xrv" ? 1 : 3;
  const slots = kind === "xrv" ? 18 : 14;
  const g = new GraphBuilder("torch_jit");
  g.input("input.1", ["batch_size", channels, S, S]);
  g.floatInitializer("features.conv0.weight", [8, channels, 3, 3], randoms(1, 8 * channels * 9, 0.5));
  g.floatInitializer("features.conv1.weight", [16, 8, 3, 3], randoms(2, 16 * 8 * 9, 0.3));
  g.floatInitializer("features.conv1.bias", [16], randoms(3, 16, 0.1));
  let x = g.node("Conv", "/features/conv0/Conv", ["input.1", "features.conv0.weight"], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  x = g.node("Relu", "/features/relu0/Relu", [x]);
  x = g.node("Conv", "/features/conv1/Conv", [x, "features.conv1.weight", "features.conv1.bias"], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  const feats = g.node("Relu", "/Relu", [x]);
  if (opts.featuresOutput) g.output(feats, ["batch_size", 16, 8, 8]);
  const pooled = opts.gap === false ? feats : g.node("GlobalAveragePool", "/GlobalAveragePool", [feats]);
  const flat = g.node("Flatten", "/Flatten", [pooled], { axis: 1 });
  if (kind === "xrv") {
    g.floatInitializer("classifier.weight", [slots, 16], randoms(4, slots * 16, opts.gap === false ? 0.05 : 2));
    g.floatInitializer("classifier.bias", [slots], randoms(5, slots, 0.5));
    const logits = g.node("Gemm", "/classifier/Gemm", [flat, "classifier.weight", "classifier.bias"], { alpha: f(1), beta: f(1), transB: 1 });
    const p = g.node("Sigmoid", "/Sigmoid", [logits]);
    // op_norm: p < t ? p / (2t) : 1 - (1 - p) / (2(1 - t))
    const t = Float32Array.from({ length: slots }, (_, i) => 0.2 + 0.03 * i);
    g.floatInitializer("op_threshs", [slots], t);
    g.floatInitializer("two", [], new Float32Array([2]));
    g.floatInitializer("one", [], new Float32Array([1]));
    const low = g.node("Div", "/Div", [p, g.node("Mul", "/Mul", ["op_threshs", "two"])]);
    const oneMinusP = g.node("Sub", "/Sub", ["one", p]);
    const oneMinusT = g.node("Mul", "/Mul_1", [g.node("Sub", "/Sub_1", ["one", "op_threshs"]), "two"]);
    const high = g.node("Sub", "/Sub_2", ["one", g.node("Div", "/Div_1", [oneMinusP, oneMinusT])]);
    g.node("Where", "output", [g.node("Less", "/Less", [p, "op_threshs"]), low, high]);
    g.output("output", ["batch_size", slots]);
  } else {
    g.floatInitializer("fc.weight_t", [16, slots], randoms(6, 16 * slots, 1));
    g.floatInitializer("fc.bias", [slots], randoms(7, slots, 0.5));
    const mm = g.node("MatMul", "/fc/MatMul", [flat, "fc.weight_t"]);
    g.node("Add", "logits", [mm, "fc.bias"]);
    g.output("logits", ["batch_size", slots]);
  }
  if (opts.featuresOutput) g.outputs.reverse();
  return encodeModel(g.toModel({ producerName: "pytorch" }));
}

function grayImage(batch: number, channels: number): Float32Array {
  const r = seededRandom(42);
  const one = Float32Array.from({ length: batch * S * S }, () => r() * 2048 - 1024);
  const out = new Float32Array(batch * channels * S * S);
  for (let b = 0; b < batch; b++) for (let c = 0; c < channels; c++) out.set(one.subarray(b * S * S, (b + 1) * S * S), (b * channels + c) * S * S);
  return out;
}

async function runModel(bytes: Uint8Array | string, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(bytes as Uint8Array, { intraOpNumThreads: 1 });
  try {
    return (await s.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await s.release();
  }
}

describe("ONNX import (PyTorch exports)", () => {
  it("torchxrayvision-like export with builtin:xrv: 14 of 18 slots in card order, 1 channel, features output, same numbers", async () => {
    const src = join(tmp.dir, "xrv-densenet.onnx");
    writeFileSync(src, mimicExport("xrv"));
    const out = join(tmp.dir, "xrv");
    expect(await main(["node", "cxr", "model", "import", src, "--labels-map", "builtin:xrv", "--out", out])).toBe(0);
    const card = readModelCard(out);
    expect(card.labels.map((l) => l.name)).toEqual([...NIH_LABELS]);
    expect(card.input).toEqual({ size: S, layout: "NCHW", pixelScale: 2048, mean: [1024, 1024, 1024], std: [1, 1, 1] });
    expect(card.architecture).toMatch(/1-channel input fed from channel 0, NCHW/);
    expect(card.training.summary).toMatch(/^imported from xrv-densenet\.onnx .*14 of its 18 output slots mapped to NIH labels \(not used: Lung Lesion, Fracture, Lung Opacity, Enlarged Cardiomediastinum\)/);

    const batch = 2;
    const reference = await runModel(mimicExport("xrv", { featuresOutput: true }), { "input.1": new ort.Tensor("float32", grayImage(batch, 1), [batch, 1, S, S]) });
    const got = await runModel(readFileSync(join(out, "model.onnx")), { image: new ort.Tensor("float32", grayImage(batch, 3), [batch, 3, S, S]) });
    expect(got.probabilities!.dims).toEqual([batch, 14]);
    const ref = reference.output!.data as Float32Array;
    const p = got.probabilities!.data as Float32Array;
    for (let b = 0; b < batch; b++)
      NIH_LABELS.forEach((label, j) => expect(Math.abs(p[b * 14 + j]! - ref[b * 18 + XRV_PATHOLOGIES.indexOf(label)]!)).toBeLessThan(1e-6));
    expect(Math.max(...p) - Math.min(...p)).toBeGreaterThan(0.2);
    expect(got.features!.dims).toEqual([batch, 16, 8, 8]);
    expect([...(got.features!.data as Float32Array)]).toEqual([...(reference["/Relu"]!.data as Float32Array)]);

    // The head GradCAM uses: rows of classifier.weight at each card label's slot.
    const head = readClassifierHead(decodeModel(readFileSync(join(out, "model.onnx"))));
    expect([head.channels, head.classes]).toEqual([16, 14]);
    const w = randoms(4, 18 * 16, 2);
    const bias = randoms(5, 18, 0.5);
    NIH_LABELS.forEach((label, j) => {
      const slot = XRV_PATHOLOGIES.indexOf(label);
      for (let c = 0; c < 16; c++) expect(head.kernel[c * 14 + j]).toBe(w[slot * 16 + c]);
      expect(head.bias[j]).toBe(bias[slot]);
    });
  });

  it("logit outputs in another order via a JSON labels map (MatMul + Add head): sigmoid added, head reproduces the logits", async () => {
    const order = [...NIH_LABELS].reverse();
    const mapFile = join(tmp.dir, "map.json");
    writeFileSync(mapFile, JSON.stringify({ description: "test export", outputs: order, activation: "logit", input: { channels: 3, pixelScale: 1, mean: [0.5, 0.5, 0.5], std: 0.25 } }));
    const src = join(tmp.dir, "logits.onnx");
    writeFileSync(src, mimicExport("logits"));
    const out = join(tmp.dir, "logits");
    const card = await importModel(src, { out, labelsMap: loadLabelsMap(mapFile) });
    expect(card.input.std).toEqual([0.25, 0.25, 0.25]);
    expect(card.labels.map((l) => l.name)).toEqual([...NIH_LABELS]);
    const x = grayImage(1, 3).map((v) => v / 1024);
    const ref = (await runModel(mimicExport("logits"), { "input.1": new ort.Tensor("float32", x, [1, 3, S, S]) })).logits!.data as Float32Array;
    const got = await runModel(readFileSync(join(out, "model.onnx")), { image: new ort.Tensor("float32", x, [1, 3, S, S]) });
    const p = got.probabilities!.data as Float32Array;
    const feats = got.features!.data as Float32Array;
    const head = readClassifierHead(decodeModel(readFileSync(join(out, "model.onnx"))));
    NIH_LABELS.forEach((label, j) => {
      const logit = ref[order.indexOf(label)]!;
      expect(Math.abs(p[j]! - 1 / (1 + Math.exp(-logit)))).toBeLessThan(1e-6);
      // GAP of the features through the head gives the same logit.
      let z = head.bias[j]!;
      for (let c = 0; c < head.channels; c++) {
        let m = 0;
        for (let k = 0; k < 64; k++) m += feats[c * 64 + k]!;
        z += (m / 64) * head.kernel[c * head.classes + j]!;
      }
      expect(Math.abs(z - logit)).toBeLessThan(1e-4);
    });
  });

  it("outputs already in NIH order need no reordering: the dense layer is replaced in place", async () => {
    const mapFile = join(tmp.dir, "map-nih.json");
    writeFileSync(mapFile, JSON.stringify({ description: "NIH-order export", outputs: NIH_LABELS, activation: "logit", input: { channels: 3, pixelScale: 1, mean: 0, std: 1 } }));
    const src = join(tmp.dir, "logits-nih.onnx");
    writeFileSync(src, mimicExport("logits"));
    const out = join(tmp.dir, "logits-nih");
    await importModel(src, { out, labelsMap: loadLabelsMap(mapFile) });
    const model = decodeModel(readFileSync(join(out, "model.onnx")));
    expect(model.graph!.node!.some((n) => n.name === "cxr_slot_order" || n.name === "cxr_other_slots")).toBe(false);
    const x = grayImage(1, 3).map((v) => v / 1024);
    const ref = (await runModel(mimicExport("logits"), { "input.1": new ort.Tensor("float32", x, [1, 3, S, S]) })).logits!.data as Float32Array;
    const p = (await runModel(readFileSync(join(out, "model.onnx")), { image: new ort.Tensor("float32", x, [1, 3, S, S]) })).probabilities!.data as Float32Array;
    ref.forEach((logit, j) => expect(Math.abs(p[j]! - 1 / (1 + Math.exp(-logit)))).toBeLessThan(1e-6));
  });

  it("reads the head of a built DenseNet121-14 (predictions/kernel, predictions/bias)", () => {
    const w = randomDenseNet121Weights(9);
    const head = readClassifierHead(buildDenseNet121Model({ inputSize: 32, weights: w }));
    expect([head.channels, head.classes]).toEqual([1024, 14]);
    expect([...head.kernel]).toEqual([...w.get("predictions/kernel")!.data]);
  });

  it("refuses what it cannot map, with reasons", async () => {
    const src = join(tmp.dir, "nogap.onnx");
    writeFileSync(src, mimicExport("xrv", { gap: false }));
    await expect(importModel(src, { out: join(tmp.dir, "x1"), labelsMap: loadLabelsMap("builtin:xrv") })).rejects.toThrow(/nogap\.onnx: found no global average pooling before output output; .*GradCAM/);
    const xrv = join(tmp.dir, "xrv-2.onnx");
    writeFileSync(xrv, mimicExport("xrv"));
    await expect(importModel(xrv, { out: join(tmp.dir, "x2"), labelsMap: loadLabelsMap("builtin:chexnet") })).rejects.toThrow(/input input\.1 has 1 channels but the labels map says 3/);
    await expect(importModel(xrv, { out: join(tmp.dir, "x3") })).rejects.toThrow(/needs --labels-map/);
    expect(() => loadLabelsMap("builtin:nope")).toThrow(/unknown labels map builtin:nope \(builtins: builtin:xrv, builtin:chexnet\)/);
    const bad = join(tmp.dir, "bad-map.json");
    writeFileSync(bad, JSON.stringify({ outputs: [], activation: "softmax" }));
    expect(() => loadLabelsMap(bad)).toThrow(/bad-map\.json: invalid labels map — .*description.*outputs.*activation/);
    const notOnnx = join(tmp.dir, "junk.onnx");
    writeFileSync(notOnnx, "hello");
    await expect(importModel(notOnnx, { out: join(tmp.dir, "x4"), labelsMap: loadLabelsMap("builtin:xrv") })).rejects.toThrow(/junk\.onnx: /);
  });
});
