import { BLOCKS, denseNet121Layers, FEATURE_CHANNELS, HEAD_BIAS, HEAD_KERNEL, KERAS_WEIGHTS, type LayerSpec } from "./densenet121.ts";
import type { WeightMap } from "./onnx-builder.ts";

/**
 * The one place where weights read from a file (Keras 2/3 HDF5, a .keras archive, a torchvision state dict) meet
 * the DenseNet121 graph builder. Each reader names its tensors by DenseNet121 layer and parameter (Keras 2's
 * names: `conv1/conv` + `kernel`, `conv2_block1_0_bn` + `moving_mean`, ...) and says which layout they are in;
 * this module checks them completely — the architecture, every weight present once, shapes equal, nothing left
 * over except one Dense head — and converts them to the graph's layouts.
 */
export interface SourceTensor {
  /** DenseNet121 layer in Keras 2's naming (see canonicalLayerName), or the head layer's own name. */
  layer: string;
  /** Keras's parameter name: kernel, bias, gamma, beta, moving_mean, moving_variance. */
  param: string;
  shape: number[];
  data: Float32Array;
  /** File and place inside it, for messages. */
  where: string;
}

/** keras: conv HWIO, Dense [in, out]. torch: conv OIHW, Linear [out, in]. */
export type TensorLayout = "keras" | "torch";

export interface MappedDenseNet121 {
  /** Trunk weights in ONNX layouts, plus `predictions/*` when the file has a Dense head. */
  weights: WeightMap;
  head?: { layer: string; units: number };
}

/** The published DenseNets other than 121, by their dense blocks (Huang et al. 2017; keras.applications, torchvision). */
const OTHER_DENSENETS: Record<string, string> = { "6-12-32-32": "DenseNet169", "6-12-48-32": "DenseNet201", "6-12-36-24": "DenseNet161", "6-12-64-48": "DenseNet264" };

/**
 * Keras 3 (and tf.keras from 2.13 on) names the stem `conv1_conv`/`conv1_bn`/`conv1_relu` where Keras 2 wrote
 * `conv1/conv`...; every other DenseNet layer name is the same in both generations.
 */
export function canonicalLayerName(name: string): string {
  return name.replace(/^conv1_(conv|bn|relu)$/, "conv1/$1");
}

/** A layer name of any DenseNet (121/169/201/...), so that a file of another depth is recognised as such. */
function isDenseNetLayer(name: string): boolean {
  return /^(conv1\/(conv|bn)|conv\d_block\d+_[012]_(conv|bn)|pool\d_(conv|bn)|bn)$/.test(name);
}

/** The dense blocks a set of layer names describes (highest block index per stage). */
function blocksOf(layers: Iterable<string>): number[] {
  const blocks = [0, 0, 0, 0];
  for (const l of layers) {
    const m = /^conv(\d)_block(\d+)_/.exec(l);
    if (m && Number(m[1]) >= 2 && Number(m[1]) <= 5) blocks[Number(m[1]) - 2] = Math.max(blocks[Number(m[1]) - 2]!, Number(m[2]));
  }
  return blocks;
}

/**
 * Throws when the layer names describe another published DenseNet, naming it. Other block counts (a file cut
 * short, a hand-made variant) fall through to the missing/unknown-weight messages, which say more.
 */
export function checkDenseNet121Blocks(file: string, layers: Iterable<string>): void {
  const blocks = blocksOf(layers).join("-");
  const other = OTHER_DENSENETS[blocks];
  if (other) throw new Error(`${file}: this is a ${other} (dense blocks ${blocks}), not a DenseNet121 (${BLOCKS.join("-")}); cxr builds DenseNet121 only`);
}

/** The shape a parameter has in the file's layout. */
function sourceShape(l: LayerSpec, param: string, layout: TensorLayout): number[] {
  if (l.kind === "conv") return layout === "keras" ? [l.kernel, l.kernel, l.inChannels, l.filters] : [l.filters, l.inChannels, l.kernel, l.kernel];
  if (l.kind === "bn") return [l.channels];
  if (param === "bias") return [l.units];
  return layout === "keras" ? [l.inputs, l.units] : [l.units, l.inputs];
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

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Converts one checked tensor to the graph's layout (conv OIHW, Dense [in, out]). */
function toGraphLayout(l: LayerSpec, t: SourceTensor, layout: TensorLayout): Float32Array {
  if (l.kind === "conv" && layout === "keras") return hwioToOihw(t.data, t.shape);
  if (l.kind === "dense" && t.param === "kernel" && layout === "torch") return transpose2d(t.data, l.units, l.inputs);
  return t.data;
}

/**
 * Maps a file's tensors onto DenseNet121 (+ an optional Dense head on the 1024 pooled features). Every trunk
 * weight must be there exactly once with its exact shape; the only other weights allowed are one Dense layer's
 * kernel and bias. Errors name the file, the first offending tensor and what was expected.
 */
export function mapDenseNet121(file: string, tensors: SourceTensor[], layout: TensorLayout): MappedDenseNet121 {
  checkDenseNet121Blocks(file, tensors.map((t) => t.layer));
  const trunk = new Map(denseNet121Layers(0).map((l) => [l.name, l]));
  const byName = new Map<string, SourceTensor>();
  const rest: SourceTensor[] = [];
  for (const t of tensors) {
    if (!trunk.has(t.layer)) {
      rest.push(t);
      continue;
    }
    const key = `${t.layer}/${t.param}`;
    const first = byName.get(key);
    if (first) throw new Error(`${t.where}: a second weight for ${key} (the first is ${first.where})`);
    byName.set(key, t);
  }

  const weights: WeightMap = new Map();
  const missing: string[] = [];
  for (const l of trunk.values()) {
    for (const param of KERAS_WEIGHTS[l.kind]) {
      const t = byName.get(`${l.name}/${param}`);
      if (!t) {
        missing.push(`${l.name}/${param}`);
        continue;
      }
      const want = sourceShape(l, param, layout);
      if (!sameShape(t.shape, want)) throw new Error(`${t.where}: shape [${t.shape.join(",")}], DenseNet121 (${layout === "keras" ? "Keras, channels-last" : "PyTorch"}) expects [${want.join(",")}] for ${l.name}/${param}`);
      weights.set(`${l.name}/${param}`, { dims: l.kind === "conv" ? [l.filters, l.inChannels, l.kernel, l.kernel] : want, data: toGraphLayout(l, t, layout) });
    }
  }
  const expected = [...trunk.values()].reduce((n, l) => n + KERAS_WEIGHTS[l.kind].length, 0);
  if (missing.length > 0) throw new Error(`${file}: not a DenseNet121 — ${missing.length} of its ${expected} weights are missing (e.g. ${missing.slice(0, 3).join(", ")})`);

  const unknown = rest.filter((t) => isDenseNetLayer(t.layer));
  if (unknown.length > 0) throw new Error(`${unknown[0]!.where}: ${unknown[0]!.layer}/${unknown[0]!.param} is not a weight of DenseNet121`);
  const head = mapHead(file, rest, layout);
  if (head) {
    weights.set(HEAD_KERNEL, head.kernel);
    weights.set(HEAD_BIAS, head.bias);
    return { weights, head: { layer: head.layer, units: head.units } };
  }
  return { weights };
}

/** The Dense head: one layer with a kernel over the 1024 pooled features and a bias; nothing else may be left. */
function mapHead(file: string, rest: SourceTensor[], layout: TensorLayout) {
  if (rest.length === 0) return undefined;
  const inAxis = layout === "keras" ? 0 : 1;
  const kernels = rest.filter((t) => t.param === "kernel" && t.shape.length === 2 && t.shape[inAxis] === FEATURE_CHANNELS);
  if (kernels.length > 1) throw new Error(`${file}: more than one Dense layer on the 1024 pooled features (${kernels.map((k) => k.layer).join(", ")}); cannot tell which is the head`);
  const kernel = kernels[0];
  const others = rest.filter((t) => t !== kernel && !(kernel && t.layer === kernel.layer && t.param === "bias"));
  if (others.length > 0) throw new Error(`${others[0]!.where}: weights that are not DenseNet121 + one Dense head on its 1024 features (e.g. ${others.slice(0, 3).map((t) => `${t.layer}/${t.param} [${t.shape.join(",")}]`).join(", ")})`);
  if (!kernel) return undefined;
  const units = kernel.shape[1 - inAxis]!;
  const bias = rest.find((t) => t.layer === kernel.layer && t.param === "bias");
  if (!bias || !sameShape(bias.shape, [units])) throw new Error(`${kernel.where}: the Dense head "${kernel.layer}" has no bias of shape [${units}]`);
  const spec: LayerSpec = { kind: "dense", name: kernel.layer, units, inputs: FEATURE_CHANNELS };
  return {
    layer: kernel.layer,
    units,
    kernel: { dims: [FEATURE_CHANNELS, units], data: toGraphLayout(spec, kernel, layout) },
    bias: { dims: [units], data: bias.data },
  };
}
