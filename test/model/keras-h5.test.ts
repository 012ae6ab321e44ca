import { join } from "node:path";
import h5wasm from "h5wasm/node";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { readModelCard } from "../../src/model/card.ts";
import { mapDenseNet121 } from "../../src/model/densenet121-weights.ts";
import { readKerasHdf5 } from "../../src/model/keras-h5.ts";
import { readModelWeights } from "../../src/model/model-dir.ts";
import { seededRandom } from "../../src/model/rng.ts";
import { tempDir } from "../helpers/tmp.ts";
import { kerasDenseNet121, kerasDenseNet121Layers, type KerasWeights } from "./keras-reference.ts";

const SIZE = 32;
const tmp = tempDir("cxr-keras-h5-");
afterAll(() => tmp.cleanup());

/** Known weights in Keras layouts: conv/Dense uniform, BN with non-trivial gamma/beta/statistics. */
function knownWeights(seed: number, head?: string): KerasWeights {
  const rand = seededRandom(seed);
  const u = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const W: KerasWeights = new Map();
  for (const layer of kerasDenseNet121Layers(head)) {
    for (const w of layer.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const fanIn = w.shape.length === 4 ? w.shape[0]! * w.shape[1]! * w.shape[2]! : w.shape[0]!;
      for (let i = 0; i < n; i++) {
        data[i] =
          w.name === "kernel" ? u(-1, 1) * Math.sqrt(3 / fanIn) * (layer.name === head ? 0.15 : 1.6)
          : w.name === "gamma" ? u(0.6, 1.4)
          : w.name === "beta" || w.name === "bias" ? u(-0.1, 0.1)
          : w.name === "moving_mean" ? u(-0.1, 0.1)
          : u(0.5, 1.5);
      }
      W.set(`${layer.name}/${w.name}`, { shape: w.shape, data });
    }
  }
  return W;
}

/** What the importer maps from a Keras HDF5 file (trunk + head in ONNX layouts). */
async function readKerasDenseNet121(path: string) {
  const file = await readKerasHdf5(path);
  return { form: file.form, ...mapDenseNet121(path, file.tensors, "keras") };
}

function group(root: InstanceType<typeof h5wasm.Group>, path: string): InstanceType<typeof h5wasm.Group> {
  let g = root;
  for (const part of path.split("/")) g = (g.keys().includes(part) ? g.get(part) : g.create_group(part)) as InstanceType<typeof h5wasm.Group>;
  return g;
}

/**
 * Writes W the way Keras lays it out: Keras 2 `save_weights` / `model.save` (weightless layers listed too), a nested
 * DenseNet, or Keras 3's legacy `model.save("x.h5")` (Keras 3 layer names such as `conv1_conv`, no `:0` suffixes).
 */
async function writeKerasH5(path: string, form: "weights" | "full-model" | "nested" | "keras3-legacy", W: KerasWeights, head?: string): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(path, "w");
  let root: InstanceType<typeof h5wasm.Group> = f;
  if (form !== "weights") {
    f.create_attribute("model_config", JSON.stringify({ class_name: "Model", config: { name: "model_1" } }));
    f.create_attribute("keras_version", "2.2.4");
    f.create_attribute("backend", "tensorflow");
    root = f.create_group("model_weights");
  }
  root.create_attribute("keras_version", "2.2.4");
  root.create_attribute("backend", "tensorflow");
  if (form === "nested") {
    // tf.keras Sequential([DenseNet121(include_top=False), GlobalAveragePooling2D(), Dense(14)]): the DenseNet is one
    // layer "densenet121" whose weight names are its inner layers' ("conv1/conv/kernel:0", ...).
    root.create_attribute("layer_names", ["densenet121", "global_average_pooling2d", head!]);
    group(root, "global_average_pooling2d");
    for (const [layer, names] of [["densenet121", [...W.keys()].filter((k) => !k.startsWith(`${head}/`))], [head!, [`${head}/kernel`, `${head}/bias`]]] as const) {
      const lg = group(root, layer);
      lg.create_attribute("weight_names", names.map((n) => `${n}:0`));
      for (const n of names) {
        const w = W.get(n)!;
        const dir = n.slice(0, n.lastIndexOf("/"));
        group(lg, dir).create_dataset({ name: `${n.slice(dir.length + 1)}:0`, data: w.data, shape: w.shape });
      }
    }
    f.close();
    return;
  }
  const k3 = form === "keras3-legacy";
  const rename = (n: string) => (k3 ? n.replace(/^conv1\/(conv|bn|relu)/, "conv1_$1") : n);
  const suffix = k3 ? "" : ":0";
  const layers = kerasDenseNet121Layers(head).map((l) => l.name);
  const weightless = ["input_1", "zero_padding2d_1", "conv1/relu", "zero_padding2d_2", "pool1", "relu", ...(head ? ["global_average_pooling2d_1"] : [])];
  const order = [...weightless.slice(0, 2), ...layers.slice(0, 2), ...weightless.slice(2, 5), ...layers.slice(2, head ? -1 : undefined), ...weightless.slice(5), ...(head ? [head] : [])];
  root.create_attribute("layer_names", order.map(rename));
  const byLayer = new Map<string, string[]>();
  for (const k of W.keys()) {
    const layer = k.slice(0, k.lastIndexOf("/"));
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), k]);
  }
  for (const layer of order) {
    const lg = group(root, rename(layer));
    const names = byLayer.get(layer) ?? [];
    if (names.length === 0) {
      // What h5py stores for Keras 2's `attrs["weight_names"] = []`: a zero-length float64 array.
      lg.create_attribute("weight_names", new Float64Array(0), [0], "<d");
      continue;
    }
    lg.create_attribute("weight_names", names.map((n) => `${rename(n)}${suffix}`));
    for (const n of names) {
      const w = W.get(n)!;
      group(lg, rename(layer)).create_dataset({ name: `${n.slice(layer.length + 1)}${suffix}`, data: w.data, shape: w.shape });
    }
  }
  f.close();
}

function image(size: number): { nchw: Float32Array; hwc: Float32Array } {
  const rand = seededRandom(99);
  const hwc = new Float32Array(size * size * 3).map(() => rand() * 4 - 2);
  const nchw = new Float32Array(hwc.length);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) nchw[(c * size + y) * size + x] = hwc[(y * size + x) * 3 + c]!;
  return { nchw, hwc };
}

async function runOnnx(dir: string, nchw: Float32Array, size = SIZE): Promise<{ probabilities: Float32Array; features: Float32Array; dims: readonly number[] }> {
  const s = await ort.InferenceSession.create(join(dir, "model.onnx"), { intraOpNumThreads: 1 });
  const r = await s.run({ image: new ort.Tensor("float32", nchw, [1, 3, size, size]) });
  await s.release();
  return { probabilities: r.probabilities!.data as Float32Array, features: r.features!.data as Float32Array, dims: r.features!.dims };
}

function maxAbsFeatureDiff(onnxNchw: Float32Array, ref: { h: number; w: number; c: number; d: Float64Array }): { diff: number; scale: number } {
  let diff = 0, scale = 0;
  for (let c = 0; c < ref.c; c++)
    for (let p = 0; p < ref.h * ref.w; p++) {
      const r = ref.d[p * ref.c + c]!;
      scale = Math.max(scale, Math.abs(r));
      diff = Math.max(diff, Math.abs(onnxNchw[c * ref.h * ref.w + p]! - r));
    }
  return { diff, scale };
}

describe("Keras HDF5 import", () => {
  const img = image(SIZE);
  const fullW = knownWeights(1, "dense_1");
  const trunkW = knownWeights(2);
  let fullRef: ReturnType<typeof kerasDenseNet121>;
  let trunkRef: ReturnType<typeof kerasDenseNet121>;

  beforeAll(async () => {
    await writeKerasH5(join(tmp.dir, "pretrained_model.h5"), "full-model", fullW, "dense_1");
    await writeKerasH5(join(tmp.dir, "densenet.hdf5"), "weights", trunkW);
    fullRef = kerasDenseNet121(img.hwc, SIZE, fullW, "dense_1");
    trunkRef = kerasDenseNet121(img.hwc, SIZE, trunkW);
  });

  it("full model (pretrained_model.h5 form): the imported ONNX reproduces the Keras reference to 1e-5", async () => {
    const out = join(tmp.dir, "from-full");
    expect(await main(["node", "cxr", "model", "import", join(tmp.dir, "pretrained_model.h5"), "--input-size", String(SIZE), "--out", out])).toBe(0);
    const card = readModelCard(out);
    expect(card.source).toEqual({ file: "pretrained_model.h5", format: "Keras 2 HDF5", contents: "full model", writer: "Keras 2.2.4 (tensorflow)", head: 'Dense "dense_1" (14 outputs, sigmoid) from the file' });
    expect(card.training.summary).toMatch(/^imported from pretrained_model\.h5 \(Keras 2 HDF5, full model, Keras 2\.2\.4 \(tensorflow\)\); head: Dense "dense_1"/);
    expect(card.input.size).toBe(SIZE);
    const got = await runOnnx(out, img.nchw);
    const ref = fullRef.probabilities!;
    // The reference's probabilities are spread out, so this compares something.
    expect(Math.max(...ref) - Math.min(...ref)).toBeGreaterThan(0.2);
    expect([...ref].every((v) => v > 0.05 && v < 0.95)).toBe(true);
    const probDiff = Math.max(...[...ref].map((v, i) => Math.abs(v - got.probabilities[i]!)));
    if (process.env.CXR_VERBOSE) console.log({ probDiff, ref: [...ref].map((v) => v.toFixed(3)).join(" ") });
    expect(probDiff).toBeLessThan(1e-5);
    expect(got.dims).toEqual([1, 1024, 1, 1]);
    const f = maxAbsFeatureDiff(got.features, fullRef.features);
    expect(f.scale).toBeGreaterThan(0.1);
    if (process.env.CXR_VERBOSE) console.log({ featureDiff: f.diff, featureScale: f.scale });
    expect(f.diff / f.scale).toBeLessThan(1e-5);
  });

  it("Keras 3's legacy model.save(\"x.h5\") (Keras 3 layer names, no :0 suffixes) imports to the same weights", async () => {
    const p = join(tmp.dir, "keras3-legacy.h5");
    await writeKerasH5(p, "keras3-legacy", fullW, "dense_1");
    const imp = await readKerasDenseNet121(p);
    const direct = await readKerasDenseNet121(join(tmp.dir, "pretrained_model.h5"));
    expect(imp.head).toEqual({ layer: "dense_1", units: 14 });
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    expect([...direct.weights].filter(([k, w]) => !bytes(imp.weights.get(k)!.data).equals(bytes(w.data))).map(([k]) => k)).toEqual([]);
    expect(imp.weights.size).toBe(direct.weights.size);
  });

  it("odd intermediate sizes (40 px: 20 -> 10 -> 5 -> 2 -> 1) follow Keras's padding and floor arithmetic", async () => {
    const out = join(tmp.dir, "from-full-40");
    expect(await main(["node", "cxr", "model", "import", join(tmp.dir, "pretrained_model.h5"), "--input-size", "40", "--out", out])).toBe(0);
    const img40 = image(40);
    const ref = kerasDenseNet121(img40.hwc, 40, fullW, "dense_1");
    const got = await runOnnx(out, img40.nchw, 40);
    expect(Math.max(...[...ref.probabilities!].map((v, i) => Math.abs(v - got.probabilities[i]!)))).toBeLessThan(1e-5);
    const f = maxAbsFeatureDiff(got.features, ref.features);
    expect(f.diff / f.scale).toBeLessThan(1e-5);
  });

  it("a DenseNet nested as one layer of a Sequential model imports to the same network", async () => {
    const p = join(tmp.dir, "nested.h5");
    await writeKerasH5(p, "nested", fullW, "dense_1");
    const imp = await readKerasDenseNet121(p);
    expect(imp.form).toBe("full-model");
    expect(imp.head).toEqual({ layer: "dense_1", units: 14 });
    const direct = await readKerasDenseNet121(join(tmp.dir, "pretrained_model.h5"));
    expect(imp.weights.size).toBe(direct.weights.size);
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const differing = [...direct.weights].filter(([k, w]) => !bytes(imp.weights.get(k)!.data).equals(bytes(w.data))).map(([k]) => k);
    expect(differing).toEqual([]);
  });

  it("trunk weights (densenet.hdf5 form): the features match; the head is Keras-initialised from --seed", async () => {
    const out = join(tmp.dir, "from-trunk");
    expect(await main(["node", "cxr", "model", "import", join(tmp.dir, "densenet.hdf5"), "--input-size", String(SIZE), "--seed", "4", "--out", out])).toBe(0);
    const card = readModelCard(out);
    expect(card.source).toMatchObject({ file: "densenet.hdf5", format: "Keras 2 HDF5", contents: "weights only", head: "random (seed 4, Keras default init) — not trained for these findings" });
    expect(card.training.summary).toMatch(/^imported from densenet\.hdf5 \(Keras 2 HDF5, weights only, Keras 2\.2\.4 \(tensorflow\)\); head: random \(seed 4/);
    const got = await runOnnx(out, img.nchw);
    const f = maxAbsFeatureDiff(got.features, trunkRef.features);
    expect(f.scale).toBeGreaterThan(0.1);
    if (process.env.CXR_VERBOSE) console.log({ featureDiff: f.diff, featureScale: f.scale });
    expect(f.diff / f.scale).toBeLessThan(1e-5);
    // The probabilities are the reference's features through the imported (random) head.
    const W = readModelWeights(join(out, "model.onnx"));
    const headRef = kerasDenseNet121(img.hwc, SIZE, new Map([...trunkW, ["head/kernel", { shape: [1024, 14], data: W.get("predictions/kernel")!.data }], ["head/bias", { shape: [14], data: W.get("predictions/bias")!.data }]]), "head");
    expect(Math.max(...[...headRef.probabilities!].map((v, i) => Math.abs(v - got.probabilities[i]!)))).toBeLessThan(1e-5);
  });

  it("rejects files that are not a Keras DenseNet121, naming the file and what is wrong", async () => {
    const partial = new Map([...trunkW].filter(([k]) => !k.startsWith("conv5_block16")));
    const p = join(tmp.dir, "partial.hdf5");
    await writeKerasH5(p, "weights", partial);
    await expect(readKerasDenseNet121(p)).rejects.toThrow(/partial\.hdf5: not a DenseNet121 — 10 of its \d+ weights are missing \(e\.g\. conv5_block16_0_bn\/gamma/);
    const wrong = new Map(trunkW);
    wrong.set("conv1/conv/kernel", { shape: [3, 3, 3, 64], data: new Float32Array(3 * 3 * 3 * 64) });
    const q = join(tmp.dir, "wrong.hdf5");
    await writeKerasH5(q, "weights", wrong);
    await expect(readKerasDenseNet121(q)).rejects.toThrow(/wrong\.hdf5: conv1\/conv\/conv1\/conv\/kernel:0: shape \[3,3,3,64\], DenseNet121 \(Keras, channels-last\) expects \[7,7,3,64\] for conv1\/conv\/kernel/);
  });
});
