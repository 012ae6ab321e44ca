import { basename } from "node:path";
import { existsSync } from "node:fs";
import h5wasm from "h5wasm/node";
import { denseNet121Layers, HEAD_LAYER, FEATURE_CHANNELS, KERAS_WEIGHTS, randomDenseNet121Weights, type LayerSpec } from "./densenet121.ts";
import type { WeightMap } from "./onnx-builder.ts";

/**
 * Reads Keras HDF5 weights of DenseNet121 in the seed's two forms:
 *  - a weights file (`model.save_weights`, e.g. `densenet.hdf5`, the ImageNet trunk without top): root
 *    attribute `layer_names`, one group per layer with attribute `weight_names`, datasets at
 *    `<layer>/<weight name>` (the weight name itself contains the layer name: `conv1/conv/conv1/conv/kernel:0`);
 *  - a full model (`model.save`, e.g. `pretrained_model.h5`): the same under the group `model_weights`,
 *    here with the GlobalAveragePooling2D + Dense(14) head.
 * A DenseNet nested as one layer of the outer model (its weight names then sit under that layer) works too.
 * Weights come back in the ONNX graph's layouts (conv HWIO -> OIHW; Dense stays [in, out]).
 */
export interface KerasH5Import {
  form: "weights" | "full-model";
  /** Trunk weights, plus `predictions/*` when the file has a Dense head. */
  weights: WeightMap;
  /** The Keras name of the Dense head layer (e.g. "dense_1"), if the file has one. */
  headLayer?: string;
  headUnits?: number;
  kerasVersion?: string;
  backend?: string;
}

type H5Group = InstanceType<typeof h5wasm.Group>;
type H5Dataset = InstanceType<typeof h5wasm.Dataset>;

/** Keras splits attributes over 64 KiB into `name0`, `name1`, ... (save_attributes_to_hdf5_group). */
function stringListAttr(g: H5Group, name: string): string[] | undefined {
  const attrs = g.attrs;
  const one = (n: string): string[] => {
    const v = attrs[n]!.value;
    const list = Array.isArray(v) ? v : [v];
    return list.map((s) => (s instanceof Uint8Array ? new TextDecoder().decode(s) : String(s)));
  };
  if (name in attrs) return one(name);
  if (!(`${name}0` in attrs)) return undefined;
  const out: string[] = [];
  for (let i = 0; `${name}${i}` in attrs; i++) out.push(...one(`${name}${i}`));
  return out;
}

function scalarStringAttr(g: H5Group, name: string): string | undefined {
  if (!(name in g.attrs)) return undefined;
  const v = g.attrs[name]!.value;
  return v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v);
}

/** Keras shape of a parameter given by its ONNX name. */
function kerasShape(l: LayerSpec, weight: string): number[] {
  if (l.kind === "conv") return [l.kernel, l.kernel, l.inChannels, l.filters];
  if (l.kind === "bn") return [l.channels];
  return weight === "kernel" ? [l.inputs, l.units] : [l.units];
}

/** HWIO (Keras/TensorFlow) -> OIHW (ONNX Conv). */
export function hwioToOihw(data: Float32Array, [kh, kw, ci, co]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let h = 0; h < kh!; h++)
    for (let w = 0; w < kw!; w++)
      for (let i = 0; i < ci!; i++)
        for (let o = 0; o < co!; o++) out[((o * ci! + i) * kh! + h) * kw! + w] = data[((h * kw! + w) * ci! + i) * co! + o]!;
  return out;
}

function floats(ds: H5Dataset, where: string): Float32Array {
  const v = ds.value;
  if (v instanceof Float32Array) return v;
  if (v instanceof Float64Array) return Float32Array.from(v);
  throw new Error(`${where}: dataset is not float32/float64 (dtype ${JSON.stringify(ds.dtype)})`);
}

export async function readKerasDenseNet121H5(path: string): Promise<KerasH5Import> {
  if (!existsSync(path)) throw new Error(`${path}: no such file`);
  await h5wasm.ready;
  let file: InstanceType<typeof h5wasm.File>;
  try {
    file = new h5wasm.File(path, "r");
  } catch (err) {
    throw new Error(`${path}: not an HDF5 file (${(err as Error).message})`);
  }
  try {
    const full = file.keys().includes("model_weights");
    const root = (full ? file.get("model_weights") : file) as H5Group;
    const layerNames = stringListAttr(root, "layer_names");
    if (!layerNames) throw new Error(`${path}: no "layer_names" attribute${full ? " in model_weights" : ""} — not a Keras 2 HDF5 weights file or full model (Keras 3 ".weights.h5"/".keras" files use another layout and are not supported)`);

    // Every stored weight, by its Keras weight name without the ":0" suffix.
    const stored = new Map<string, { data: Float32Array; shape: number[]; where: string }>();
    for (const layer of layerNames) {
      const lg = root.get(layer);
      if (!(lg instanceof h5wasm.Group)) throw new Error(`${path}: layer "${layer}" is listed in layer_names but has no group`);
      for (const wn of stringListAttr(lg, "weight_names") ?? []) {
        const ds = lg.get(wn);
        const where = `${path}: ${full ? "model_weights/" : ""}${layer}/${wn}`;
        if (!(ds instanceof h5wasm.Dataset)) throw new Error(`${where}: listed in weight_names but missing`);
        stored.set(wn.replace(/:\d+$/, ""), { data: floats(ds, where), shape: ds.shape ?? [], where });
      }
    }

    const trunk = denseNet121Layers(0);
    const expected = new Map<string, LayerSpec>();
    for (const l of trunk) for (const w of KERAS_WEIGHTS[l.kind]) expected.set(`${l.name}/${w}`, l);

    const weights: WeightMap = new Map();
    const unmatched = new Map<string, { data: Float32Array; shape: number[]; where: string }>();
    for (const [name, w] of stored) {
      // Match the longest suffix on a "/" boundary, so "conv1/bn/gamma" is conv1/bn's and not the final "bn"'s,
      // and a DenseNet nested as a layer ("densenet121/conv1/conv/kernel") still maps.
      const parts = name.split("/");
      let key: string | undefined;
      for (let i = 0; i < parts.length - 1 && !key; i++) if (expected.has(parts.slice(i).join("/"))) key = parts.slice(i).join("/");
      if (!key) {
        unmatched.set(name, w);
        continue;
      }
      if (weights.has(key)) throw new Error(`${w.where}: a second weight for ${key}`);
      const l = expected.get(key)!;
      const shape = kerasShape(l, key.slice(l.name.length + 1));
      if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) throw new Error(`${w.where}: shape [${w.shape.join(",")}], DenseNet121 (channels-last Keras) expects [${shape.join(",")}]`);
      const onnxDims = l.kind === "conv" ? [l.filters, l.inChannels, l.kernel, l.kernel] : shape;
      weights.set(key, { dims: onnxDims, data: l.kind === "conv" ? hwioToOihw(w.data, shape) : w.data });
    }
    const missing = [...expected.keys()].filter((k) => !weights.has(k));
    if (missing.length > 0) throw new Error(`${path}: not a Keras DenseNet121 — ${missing.length} of its ${expected.size} weights are missing (e.g. ${missing.slice(0, 3).join(", ")})`);

    // The head: a Dense layer on the 1024 pooled features (its name is whatever Keras gave it, e.g. "dense_1").
    const heads = [...unmatched.keys()].filter((k) => k.endsWith("/kernel") && unmatched.get(k)!.shape.length === 2 && unmatched.get(k)!.shape[0] === FEATURE_CHANNELS);
    if (heads.length > 1) throw new Error(`${path}: more than one Dense layer on the 1024 features (${heads.join(", ")}); cannot tell which is the head`);
    const result: KerasH5Import = { form: full ? "full-model" : "weights", weights, kerasVersion: scalarStringAttr(file, "keras_version"), backend: scalarStringAttr(file, "backend") };
    const others = [...unmatched.keys()].filter((k) => !(heads[0] && (k === heads[0] || k === heads[0].replace(/kernel$/, "bias"))));
    if (others.length > 0) throw new Error(`${path}: weights that are not DenseNet121 + Dense head: ${others.slice(0, 5).join(", ")}`);
    if (heads[0]) {
      const kernel = unmatched.get(heads[0])!;
      const units = kernel.shape[1]!;
      const bias = unmatched.get(heads[0].replace(/kernel$/, "bias"));
      if (!bias || bias.shape.length !== 1 || bias.shape[0] !== units) throw new Error(`${kernel.where}: the Dense head has no bias of shape [${units}]`);
      weights.set(`${HEAD_LAYER}/kernel`, { dims: [FEATURE_CHANNELS, units], data: kernel.data });
      weights.set(`${HEAD_LAYER}/bias`, { dims: [units], data: bias.data });
      result.headLayer = heads[0].split("/").slice(-2, -1)[0];
      result.headUnits = units;
    }
    return result;
  } finally {
    file.close();
  }
}

/** A trunk-only import gets Keras's default init for the head (seeded), so the graph is complete. */
export function withRandomHead(weights: WeightMap, seed: number, classes: number): WeightMap {
  const head = randomDenseNet121Weights(seed, classes);
  const out = new Map(weights);
  out.set(`${HEAD_LAYER}/kernel`, head.get(`${HEAD_LAYER}/kernel`)!);
  out.set(`${HEAD_LAYER}/bias`, head.get(`${HEAD_LAYER}/bias`)!);
  return out;
}

export function describeKerasImport(path: string, imp: KerasH5Import, headSeed: number): string {
  const version = imp.kerasVersion ? `, Keras ${imp.kerasVersion}` : "";
  return imp.headLayer
    ? `imported from ${basename(path)} (Keras full model${version}; head = Dense layer "${imp.headLayer}")`
    : `imported from ${basename(path)} (Keras DenseNet121 trunk weights${version}); Dense head random (seed ${headSeed}) — not trained for these findings`;
}
