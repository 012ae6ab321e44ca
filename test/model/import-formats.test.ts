import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { zipSync } from "fflate";
import h5wasm from "h5wasm/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readModelCard, type ModelCard } from "../../src/model/card.ts";
import { buildDenseNet121Model, denseNet121Layers, randomDenseNet121Weights } from "../../src/model/densenet121.ts";
import { importModel } from "../../src/model/import.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { readModelWeights, readOnnxModel } from "../../src/model/model-dir.ts";
import { encodeModel, type ModelProto, type WeightMap } from "../../src/model/onnx-builder.ts";
import { CHEXNET_LABELS } from "../../src/model/onnx-import.ts";
import { requireSharedData, SHARED_DATA } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const repo = join(import.meta.dirname, "../..");
const cxr = (...args: string[]) => spawnSync(process.execPath, [join(repo, "bin/cxr.js"), ...args], { cwd: repo, encoding: "utf8", timeout: 300_000 });
const hasData = requireSharedData();
const KERAS = join(SHARED_DATA, "models/keras-densenet121");
const tmp = tempDir("cxr-import-formats-");
afterAll(() => tmp.cleanup());

interface Expected { labels_in_output_order: string[]; probabilities: Record<string, number[]> }

/** `cxr infer` on the 10 PNGs: label -> probability, per input file name. */
function inferPngs(modelDir: string, out: string): Record<string, Record<string, number>> {
  const pngs = readdirSync(join(KERAS, "inputs")).map((f) => join(KERAS, "inputs", f));
  const r = cxr("infer", ...pngs, "--model", modelDir, "--out", out);
  expect(r.status, r.stderr).toBe(0);
  return Object.fromEntries(
    pngs.map((p) => {
      const name = p.split("/").pop()!;
      const json = JSON.parse(readFileSync(join(out, name.replace(/\.png$/, ".json")), "utf8")) as { findings: { label: string; probability: number }[] };
      return [name, Object.fromEntries(json.findings.map((f) => [f.label, f.probability]))];
    }),
  );
}

function maxDiff(a: Record<string, Record<string, number>>, b: Record<string, Record<string, number>>): number {
  let m = 0;
  for (const [file, probs] of Object.entries(b)) for (const [label, p] of Object.entries(probs)) m = Math.max(m, Math.abs(a[file]![label]! - p));
  return m;
}

function expectedProbabilities(): Record<string, Record<string, number>> {
  const e = JSON.parse(readFileSync(join(KERAS, "expected-keras-probabilities.json"), "utf8")) as Expected;
  return Object.fromEntries(Object.entries(e.probabilities).map(([f, ps]) => [f, Object.fromEntries(e.labels_in_output_order.map((l, i) => [l, ps[i]!]))]));
}

/** Initializers nothing reads, and what onnxruntime prints when loading the file in a fresh process. */
function loadCheck(modelPath: string): { unused: string[]; ortOutput: string } {
  const model = readOnnxModel(modelPath);
  const read = new Set((model.graph!.node ?? []).flatMap((n) => n.input ?? []));
  const unused = (model.graph!.initializer ?? []).map((t) => t.name!).filter((n) => !read.has(n));
  const r = spawnSync(process.execPath, ["-e", `require("onnxruntime-node").InferenceSession.create(process.argv[1]).catch((e) => { console.error(e); process.exit(1); })`, modelPath], { cwd: repo, encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return { unused, ortOutput: `${r.stdout}${r.stderr}`.trim() };
}

// ---- writers the test owns: torchvision safetensors, Keras 3 .weights.h5, Keras 2 HDF5 --------------------------

const TORCH_BN = [["gamma", "weight"], ["beta", "bias"], ["moving_mean", "running_mean"], ["moving_variance", "running_var"]] as const;

/** torchvision DenseNet121 state-dict names for cxr's (Keras-named) DenseNet121 layers. */
function torchName(layer: string): string {
  if (layer === "conv1/conv") return "features.conv0";
  if (layer === "conv1/bn") return "features.norm0";
  if (layer === "bn") return "features.norm5";
  let m = /^conv(\d)_block(\d+)_(0_bn|1_conv|1_bn|2_conv)$/.exec(layer);
  if (m) return `features.denseblock${Number(m[1]) - 1}.denselayer${m[2]}.${{ "0_bn": "norm1", "1_conv": "conv1", "1_bn": "norm2", "2_conv": "conv2" }[m[3]!]}`;
  m = /^pool(\d)_(bn|conv)$/.exec(layer);
  if (m) return `features.transition${Number(m[1]) - 1}.${m[2] === "bn" ? "norm" : "conv"}`;
  throw new Error(`no torchvision name for ${layer}`);
}

/** A CheXNet-style torchvision state dict (classifier rows in CheXNet's label order) from cxr weights (NIH order). */
function torchStateDict(w: WeightMap): Map<string, { dtype: "F32" | "I64"; shape: number[]; bytes: Buffer }> {
  const f32 = (shape: number[], data: Float32Array) => ({ dtype: "F32" as const, shape, bytes: Buffer.from(data.buffer, data.byteOffset, data.byteLength) });
  const sd = new Map<string, { dtype: "F32" | "I64"; shape: number[]; bytes: Buffer }>();
  for (const l of denseNet121Layers(0)) {
    const t = torchName(l.name);
    if (l.kind === "conv") sd.set(`module.${t}.weight`, f32(w.get(`${l.name}/kernel`)!.dims, w.get(`${l.name}/kernel`)!.data));
    else if (l.kind === "bn") {
      for (const [k, tv] of TORCH_BN) sd.set(`module.${t}.${tv}`, f32([l.channels], w.get(`${l.name}/${k}`)!.data));
      sd.set(`module.${t}.num_batches_tracked`, { dtype: "I64", shape: [], bytes: Buffer.alloc(8) });
    }
  }
  const kernel = w.get("predictions/kernel")!.data; // [1024, 14] NIH order
  const rows = new Float32Array(14 * 1024);
  CHEXNET_LABELS.forEach((label, r) => {
    const c = NIH_LABELS.indexOf(label as (typeof NIH_LABELS)[number]);
    for (let i = 0; i < 1024; i++) rows[r * 1024 + i] = kernel[i * 14 + c]!;
  });
  sd.set("module.classifier.0.weight", f32([14, 1024], rows));
  sd.set("module.classifier.0.bias", f32([14], Float32Array.from(CHEXNET_LABELS, (l) => w.get("predictions/bias")!.data[NIH_LABELS.indexOf(l as (typeof NIH_LABELS)[number])]!)));
  return sd;
}

function writeSafetensors(path: string, sd: ReturnType<typeof torchStateDict>): void {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const [name, t] of sd) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...[...sd.values()].map((t) => t.bytes)]));
}

/** OIHW -> Keras HWIO. */
function oihwToHwio(data: Float32Array, [o, i, h, w]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let a = 0; a < o!; a++) for (let b = 0; b < i!; b++) for (let y = 0; y < h!; y++) for (let x = 0; x < w!; x++) out[((y * w! + x) * i! + b) * o! + a] = data[((a * i! + b) * h! + y) * w! + x]!;
  return out;
}

/** A Keras 3 `.weights.h5` (layers/<class>_<n>/vars/<i>), with or without the `name` attributes newer Keras writes. */
async function writeKeras3WeightsH5(path: string, w: WeightMap, headUnits: number, names: boolean): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(path, "w");
  const layers = f.create_group("layers");
  const counters: Record<string, number> = {};
  const add = (cls: string, name: string, tensors: { data: Float32Array; shape: number[] }[]) => {
    const n = counters[cls] ?? 0;
    counters[cls] = n + 1;
    const vars = layers.create_group(n === 0 ? cls : `${cls}_${n}`).create_group("vars");
    if (names) vars.create_attribute("name", name);
    tensors.forEach((t, i) => vars.create_dataset({ name: String(i), data: t.data, shape: t.shape }));
  };
  for (const l of denseNet121Layers(0)) {
    const kerasName = l.name.replace("/", "_");
    if (l.kind === "conv") {
      const k = w.get(`${l.name}/kernel`)!;
      add("conv2d", kerasName, [{ data: oihwToHwio(k.data, k.dims), shape: [k.dims[2]!, k.dims[3]!, k.dims[1]!, k.dims[0]!] }]);
    } else if (l.kind === "bn") add("batch_normalization", kerasName, ["gamma", "beta", "moving_mean", "moving_variance"].map((p) => ({ data: w.get(`${l.name}/${p}`)!.data, shape: [l.channels] })));
  }
  add("dense", "dense", [{ data: w.get("predictions/kernel")!.data.slice(0, 1024 * headUnits), shape: [1024, headUnits] }, { data: w.get("predictions/bias")!.data.slice(0, headUnits), shape: [headUnits] }]);
  f.close();
}

/** A Keras 2 `save_weights` file of a DenseNet with the given dense blocks (zero weights: only the layout matters). */
async function writeKeras2DenseNet(path: string, blocks: number[]): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(path, "w");
  const layers: [string, [string, number[]][]][] = [["input_1", []], ["conv1/conv", [["kernel", [7, 7, 3, 64]]]], ["conv1/bn", bnParams(64)]];
  let c = 64;
  blocks.forEach((count, bi) => {
    for (let i = 1; i <= count; i++) {
      const p = `conv${bi + 2}_block${i}`;
      layers.push([`${p}_0_bn`, bnParams(c)], [`${p}_1_conv`, [["kernel", [1, 1, c, 128]]]], [`${p}_1_bn`, bnParams(128)], [`${p}_2_conv`, [["kernel", [3, 3, 128, 32]]]]);
      c += 32;
    }
    if (bi < 3) {
      layers.push([`pool${bi + 2}_bn`, bnParams(c)], [`pool${bi + 2}_conv`, [["kernel", [1, 1, c, c / 2]]]]);
      c /= 2;
    }
  });
  layers.push(["bn", bnParams(c)]);
  f.create_attribute("layer_names", layers.map(([n]) => n));
  const group = (path: string) => {
    let g: InstanceType<typeof h5wasm.Group> = f;
    for (const part of path.split("/")) g = (g.keys().includes(part) ? g.get(part) : g.create_group(part)) as InstanceType<typeof h5wasm.Group>;
    return g;
  };
  for (const [name, params] of layers) {
    const g = group(name);
    if (params.length === 0) {
      g.create_attribute("weight_names", new Float64Array(0), [0], "<d");
      continue;
    }
    g.create_attribute("weight_names", params.map(([p]) => `${name}/${p}:0`));
    const inner = group(`${name}/${name}`);
    for (const [p, shape] of params) inner.create_dataset({ name: `${p}:0`, data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape });
  }
  f.close();
}

function bnParams(c: number): [string, number[]][] {
  return ["gamma", "beta", "moving_mean", "moving_variance"].map((p) => [p, [c]]);
}

/** cxr's built graph renamed as a PyTorch export would name it (input.1 -> ... -> output), so the ONNX path imports it. */
function asTorchExport(model: ModelProto): Uint8Array {
  const rename: Record<string, string> = { image: "input.1", probabilities: "output", features: "/features/norm5/Relu_output_0", "predictions/kernel": "classifier.weight_t", "predictions/bias": "classifier.bias" };
  const r = (n: string) => rename[n] ?? n;
  const g = model.graph!;
  for (const n of g.node ?? []) {
    n.input = (n.input ?? []).map(r);
    n.output = (n.output ?? []).map(r);
  }
  for (const t of g.initializer ?? []) t.name = r(t.name!);
  for (const v of g.input ?? []) v.name = r(v.name!);
  g.output = (g.output ?? []).filter((o) => o.name === "probabilities").map((o) => ({ ...o, name: "output" }));
  model.producerName = "pytorch";
  return encodeModel(model);
}

// ---- the files Keras itself wrote ----------------------------------------------------------------------------

describe.runIf(hasData)("import of the files Keras itself wrote (../shared/data/models/keras-densenet121)", () => {
  const cards: Record<string, ModelCard> = {};
  const results: Record<string, Record<string, Record<string, number>>> = {};

  beforeAll(() => {
    for (const file of ["chexnet-keras3.keras", "chexnet-keras2-layout.weights.h5"]) {
      const out = join(tmp.dir, `m-${file}`);
      const r = cxr("model", "import", join(KERAS, file), "--input-size", "320", "--out", out);
      expect(r.status, r.stderr).toBe(0);
      cards[file] = readModelCard(out);
      results[file] = inferPngs(out, join(tmp.dir, `infer-${file}`));
    }
  });

  it("cxr model import + cxr infer reproduce Keras's own predictions to 1e-4 for both files, under one Device UID", () => {
    const expected = expectedProbabilities();
    expect(Object.keys(expected)).toHaveLength(10);
    for (const file of Object.keys(results)) expect(maxDiff(results[file]!, expected), file).toBeLessThan(1e-4);
    expect(cards["chexnet-keras3.keras"]!.deviceUid).toBe(cards["chexnet-keras2-layout.weights.h5"]!.deviceUid);
  });

  it("the cards say what was imported: format, contents, writer, head", () => {
    expect(cards["chexnet-keras3.keras"]!.source).toEqual({ file: "chexnet-keras3.keras", format: "Keras .keras archive (Keras 3 HDF5 weights)", contents: "full model", writer: "Keras 3.15.1", head: 'Dense "dense" (14 outputs, sigmoid) from the file' });
    expect(cards["chexnet-keras2-layout.weights.h5"]!.source).toEqual({
      file: "chexnet-keras2-layout.weights.h5",
      format: "Keras 2 HDF5",
      contents: "weights only",
      writer: "Keras 2.x layout (h5py rewrite of a Keras 3.15.1 file) (tensorflow)",
      head: 'Dense "dense" (14 outputs, sigmoid) from the file',
    });
    expect(cards["chexnet-keras3.keras"]!.input.size).toBe(320);
  });

  it("a Keras 3 .weights.h5 with and without the layers' names (older Keras 3 writes none) gives the same weights", async () => {
    const w = readModelWeights(join(tmp.dir, "m-chexnet-keras3.keras", "model.onnx"));
    for (const names of [true, false]) {
      const p = join(tmp.dir, `k3-${names}.weights.h5`);
      await writeKeras3WeightsH5(p, w, 14, names);
      const card = await importModel(p, { out: join(tmp.dir, `m-k3-${names}`), inputSize: 320 });
      expect(card.weightsSha256).toBe(cards["chexnet-keras3.keras"]!.weightsSha256);
      expect(card.source).toMatchObject({ format: "Keras 3 HDF5", contents: "weights only" });
    }
  });

  it("a torchvision DenseNet121 state dict in safetensors imports to the probabilities of the ONNX path (and of Keras)", async () => {
    const w = readModelWeights(join(tmp.dir, "m-chexnet-keras3.keras", "model.onnx"));
    const st = join(tmp.dir, "chexnet.safetensors");
    writeSafetensors(st, torchStateDict(w));
    const stDir = join(tmp.dir, "m-safetensors");
    const r = cxr("model", "import", st, "--input-size", "320", "--out", stDir);
    expect(r.status, r.stderr).toBe(0);
    const card = readModelCard(stDir);
    expect(card.labels.map((l) => l.name)).toEqual([...CHEXNET_LABELS]);
    expect(card.source).toEqual({ file: "chexnet.safetensors", format: "PyTorch state dict (safetensors, torchvision DenseNet names)", contents: "weights only", writer: "safetensors metadata: format=pt", head: 'Dense "classifier" (14 outputs, sigmoid) from the file' });

    // The ONNX path: the same network exported as PyTorch would (CheXNet label order), imported with builtin:chexnet.
    const chexnetHead = new Map(w);
    const cols = CHEXNET_LABELS.map((l) => NIH_LABELS.indexOf(l as (typeof NIH_LABELS)[number]));
    const k = w.get("predictions/kernel")!.data;
    chexnetHead.set("predictions/kernel", { dims: [1024, 14], data: Float32Array.from({ length: 1024 * 14 }, (_, i) => k[Math.floor(i / 14) * 14 + cols[i % 14]!]!) });
    chexnetHead.set("predictions/bias", { dims: [14], data: Float32Array.from(cols, (c) => w.get("predictions/bias")!.data[c]!) });
    const onnxFile = join(tmp.dir, "chexnet-export.onnx");
    writeFileSync(onnxFile, asTorchExport(buildDenseNet121Model({ inputSize: 320, weights: chexnetHead })));
    const onnxDir = join(tmp.dir, "m-onnx");
    const o = cxr("model", "import", onnxFile, "--labels-map", "builtin:chexnet", "--out", onnxDir);
    expect(o.status, o.stderr).toBe(0);

    const fromSt = inferPngs(stDir, join(tmp.dir, "infer-st"));
    const fromOnnx = inferPngs(onnxDir, join(tmp.dir, "infer-onnx"));
    expect(maxDiff(fromSt, fromOnnx)).toBeLessThan(1e-5);
    expect(maxDiff(fromSt, expectedProbabilities())).toBeLessThan(1e-4);
  });

  it("the written ONNX holds no unused initializer and onnxruntime prints nothing on load (ONNX path included)", () => {
    for (const dir of ["m-chexnet-keras3.keras", "m-onnx", "m-safetensors"]) {
      const check = loadCheck(join(tmp.dir, dir, "model.onnx"));
      expect(check.unused, dir).toEqual([]);
      expect(check.ortOutput, dir).toBe("");
    }
  });
});

// ---- what is refused, and how it is said ---------------------------------------------------------------------

describe("model files that are refused name the file and the reason", () => {
  const weights = randomDenseNet121Weights(3, 14);

  it("a truncated HDF5", async () => {
    const p = join(tmp.dir, "full.weights.h5");
    await writeKeras3WeightsH5(p, weights, 14, true);
    const bytes = readFileSync(p);
    const cut = join(tmp.dir, "cut.weights.h5");
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expect(importModel(cut, { out: join(tmp.dir, "x-cut") })).rejects.toThrow(new RegExp(`cut\\.weights\\.h5: truncated HDF5 file — it is ${Math.floor(bytes.length / 2)} bytes, its superblock says ${bytes.length}`));
  });

  it("a .keras zip without weights, a zip that is not Keras, and a torch.save checkpoint", async () => {
    const cfg = new TextEncoder().encode(JSON.stringify({ class_name: "Functional", config: { layers: [] } }));
    const noWeights = join(tmp.dir, "noweights.keras");
    writeFileSync(noWeights, zipSync({ "metadata.json": new TextEncoder().encode('{"keras_version":"3.15.1"}'), "config.json": cfg }, { level: 0 }));
    await expect(importModel(noWeights, { out: join(tmp.dir, "x1") })).rejects.toThrow(/noweights\.keras: a \.keras archive without model\.weights\.h5 — it holds the architecture only, no weights \(entries: metadata\.json, config\.json\)/);
    const other = join(tmp.dir, "other.keras");
    writeFileSync(other, zipSync({ "readme.txt": new TextEncoder().encode("hello") }));
    await expect(importModel(other, { out: join(tmp.dir, "x2") })).rejects.toThrow(/other\.keras: zip without config\.json — not a Keras \.keras archive \(entries: readme\.txt\)/);
    const pt = join(tmp.dir, "chexnet.pth");
    writeFileSync(pt, zipSync({ "archive/data.pkl": new Uint8Array([0x80, 2]), "archive/version": new TextEncoder().encode("3") }));
    await expect(importModel(pt, { out: join(tmp.dir, "x3") })).rejects.toThrow(/chexnet\.pth: a PyTorch torch\.save checkpoint .* save the state dict with safetensors\.torch\.save_file/);
  });

  it("a DenseNet169 (wrong architecture: said so)", async () => {
    const p = join(tmp.dir, "densenet169.h5");
    await writeKeras2DenseNet(p, [6, 12, 32, 32]);
    await expect(importModel(p, { out: join(tmp.dir, "x4") })).rejects.toThrow(/densenet169\.h5: this is a DenseNet169 \(dense blocks 6-12-32-32\), not a DenseNet121 \(6-12-24-16\); cxr builds DenseNet121 only/);
  });

  it("a 13-output head with the default 14 labels", async () => {
    const p = join(tmp.dir, "head13.weights.h5");
    await writeKeras3WeightsH5(p, weights, 13, true);
    await expect(importModel(p, { out: join(tmp.dir, "x5") })).rejects.toThrow(/head13\.weights\.h5: the Dense head "dense" has 13 outputs but 14 labels are the default \(Cardiomegaly, .*\); give the head's labels in order with --labels/);
    const card = await importModel(p, { out: join(tmp.dir, "x5b"), inputSize: 32, labels: NIH_LABELS.slice(0, 13) });
    expect(card.labels).toHaveLength(13);
  });

  it("a file in none of the formats: the formats tried and what was found", async () => {
    const p = join(tmp.dir, "notes.h5");
    writeFileSync(p, "<!DOCTYPE html><html>a download page</html>");
    await expect(importModel(p, { out: join(tmp.dir, "x6") })).rejects.toThrow(/notes\.h5: not a model file cxr can import — tried Keras HDF5 \(\.h5, \.hdf5, \.weights\.h5\), Keras \.keras \(zip\), PyTorch safetensors, ONNX; found 43 bytes starting with 3c 21 44 4f 43 54 59 50 \("<!DOCTYPE html><"\)/);
    const h5 = join(tmp.dir, "empty.h5");
    await h5wasm.ready;
    const f = new h5wasm.File(h5, "w");
    f.create_group("data");
    f.close();
    await expect(importModel(h5, { out: join(tmp.dir, "x7") })).rejects.toThrow(/empty\.h5: HDF5 without Keras weights — neither a "layer_names" attribute \(Keras 2 layout\) nor a "layers" group \(Keras 3 layout\); top-level entries: data/);
  });
});

