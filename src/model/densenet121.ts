import { f, GraphBuilder, encodeModel, type ModelProto, type Weight, type WeightMap } from "./onnx-builder.ts";
import { seededRandom } from "./rng.ts";

/**
 * Keras `DenseNet121(include_top=False)` + GlobalAveragePooling2D + Dense(14, sigmoid) — the seed notebook's
 * network — as an ONNX graph. Initializer names are the Keras layer names with the weight's name
 * (`conv1/conv/kernel`, `conv2_block1_0_bn/gamma`, `pool2_conv/kernel`, `bn/moving_variance`,
 * `predictions/kernel`), so importing Keras HDF5 weights is a name mapping. Layouts are ONNX's:
 * conv kernels OIHW (Keras stores HWIO), the Dense kernel stays Keras's [in, out] (Gemm's B).
 */

/** Keras DenseNet's BatchNormalization epsilon (densenet.py passes 1.001e-5 everywhere). */
export const BN_EPSILON = 1.001e-5;
export const GROWTH_RATE = 32;
export const BLOCKS = [6, 12, 24, 16] as const;
export const FEATURE_CHANNELS = 1024;

/** Names of the graph's inputs/outputs and of the head's initializers (what inference and training read). */
export const INPUT_NAME = "image";
export const PROBABILITIES_OUTPUT = "probabilities";
export const FEATURES_OUTPUT = "features";
export const HEAD_LAYER = "predictions";
export const HEAD_KERNEL = `${HEAD_LAYER}/kernel`;
export const HEAD_BIAS = `${HEAD_LAYER}/bias`;

export type ParamInit = { kind: "glorot_uniform"; fanIn: number; fanOut: number } | { kind: "constant"; value: number };
export interface ParamSpec {
  name: string;
  dims: number[];
  init: ParamInit;
}
export type LayerSpec =
  | { kind: "conv"; name: string; filters: number; inChannels: number; kernel: number }
  | { kind: "bn"; name: string; channels: number }
  | { kind: "dense"; name: string; units: number; inputs: number };

/** Keras's own weight names per layer kind, in the order Keras stores them. */
export const KERAS_WEIGHTS = {
  conv: ["kernel"],
  bn: ["gamma", "beta", "moving_mean", "moving_variance"],
  dense: ["kernel", "bias"],
} as const;

/** The layers with weights, in Keras order (trunk, then the head if `classes` > 0). */
export function denseNet121Layers(classes: number): LayerSpec[] {
  const layers: LayerSpec[] = [
    { kind: "conv", name: "conv1/conv", filters: 64, inChannels: 3, kernel: 7 },
    { kind: "bn", name: "conv1/bn", channels: 64 },
  ];
  let c = 64;
  BLOCKS.forEach((count, bi) => {
    const stage = bi + 2;
    for (let i = 1; i <= count; i++) {
      const p = `conv${stage}_block${i}`;
      layers.push(
        { kind: "bn", name: `${p}_0_bn`, channels: c },
        { kind: "conv", name: `${p}_1_conv`, filters: 4 * GROWTH_RATE, inChannels: c, kernel: 1 },
        { kind: "bn", name: `${p}_1_bn`, channels: 4 * GROWTH_RATE },
        { kind: "conv", name: `${p}_2_conv`, filters: GROWTH_RATE, inChannels: 4 * GROWTH_RATE, kernel: 3 },
      );
      c += GROWTH_RATE;
    }
    if (stage < 5) {
      layers.push({ kind: "bn", name: `pool${stage}_bn`, channels: c }, { kind: "conv", name: `pool${stage}_conv`, filters: Math.floor(c * 0.5), inChannels: c, kernel: 1 });
      c = Math.floor(c * 0.5);
    }
  });
  layers.push({ kind: "bn", name: "bn", channels: c });
  if (c !== FEATURE_CHANNELS) throw new Error(`DenseNet121 channel arithmetic gave ${c}`);
  if (classes > 0) layers.push({ kind: "dense", name: HEAD_LAYER, units: classes, inputs: c });
  return layers;
}

/** Every parameter with its ONNX shape and Keras's default initializer (Conv2D/Dense: glorot_uniform, bias 0; BN at identity). */
export function denseNet121Params(classes: number): ParamSpec[] {
  const out: ParamSpec[] = [];
  for (const l of denseNet121Layers(classes)) {
    if (l.kind === "conv") {
      const rf = l.kernel * l.kernel;
      out.push({ name: `${l.name}/kernel`, dims: [l.filters, l.inChannels, l.kernel, l.kernel], init: { kind: "glorot_uniform", fanIn: l.inChannels * rf, fanOut: l.filters * rf } });
    } else if (l.kind === "bn") {
      const v = { gamma: 1, beta: 0, moving_mean: 0, moving_variance: 1 } as const;
      for (const w of KERAS_WEIGHTS.bn) out.push({ name: `${l.name}/${w}`, dims: [l.channels], init: { kind: "constant", value: v[w] } });
    } else {
      out.push({ name: `${l.name}/kernel`, dims: [l.inputs, l.units], init: { kind: "glorot_uniform", fanIn: l.inputs, fanOut: l.units } });
      out.push({ name: `${l.name}/bias`, dims: [l.units], init: { kind: "constant", value: 0 } });
    }
  }
  return out;
}

/**
 * Keras's default initialisation, deterministic per seed: glorot_uniform kernels (U(±sqrt(6/(fan_in+fan_out)))),
 * zero biases, BatchNormalization at identity (gamma 1, beta 0, mean 0, variance 1). Values are drawn in
 * parameter order from one mulberry32 stream, so the same seed always gives the same weights.
 */
export function randomDenseNet121Weights(seed: number, classes = 14): WeightMap {
  const rand = seededRandom(seed);
  const weights: WeightMap = new Map();
  for (const p of denseNet121Params(classes)) {
    const n = p.dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (p.init.kind === "constant") data.fill(p.init.value);
    else {
      const limit = Math.sqrt(6 / (p.init.fanIn + p.init.fanOut));
      for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * limit;
    }
    weights.set(p.name, { dims: p.dims, data });
  }
  return weights;
}

export interface BuildOptions {
  /** Square input size S: input `image` is [N,3,S,S]. */
  inputSize: number;
  /** Weights by ONNX initializer name (see denseNet121Params for names and shapes). */
  weights: WeightMap;
  /** "full" (default): outputs `probabilities` [N,classes] and `features`; "trunk": only `features`. */
  part?: "full" | "trunk";
  classes?: number;
  /**
   * Internal tensors to expose as extra float outputs, by node name (e.g. "pool4_pool" [N,512,S/16,S/16] to cache
   * the input of the conv5 block when training a tail). Their shapes are left symbolic.
   */
  extraOutputs?: string[];
  metadata?: Record<string, string>;
}

/** Spatial size after each stage, with Keras's padding arithmetic (valid convs/pools after explicit ZeroPadding). */
export function featureGridSize(inputSize: number): number {
  let h = Math.floor((inputSize + 6 - 7) / 2) + 1; // ZeroPadding2D(3) + Conv 7x7/2 valid
  h = Math.floor((h + 2 - 3) / 2) + 1; // ZeroPadding2D(1) + MaxPool 3x3/2 valid
  for (let i = 0; i < 3; i++) h = Math.floor(h / 2); // AveragePooling2D 2x2/2 valid
  return h;
}

export function buildDenseNet121Model(opts: BuildOptions): ModelProto {
  const classes = opts.part === "trunk" ? 0 : (opts.classes ?? 14);
  const S = opts.inputSize;
  if (!Number.isInteger(S) || S < 32) throw new Error(`input size must be an integer >= 32, got ${S}`);
  const grid = featureGridSize(S);
  const g = new GraphBuilder(opts.part === "trunk" ? "densenet121_trunk" : "densenet121_14");
  const weight = (name: string, dims: number[]): string => {
    const w = opts.weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    if (w.dims.length !== dims.length || w.dims.some((d, i) => d !== dims[i])) throw new Error(`weight ${name} has shape [${w.dims.join(",")}], expected [${dims.join(",")}]`);
    return g.floatInitializer(name, dims, w.data);
  };
  const specs = new Map(denseNet121Layers(classes).map((l) => [l.name, l]));
  const conv = (name: string, x: string, stride: number, pad: number): string => {
    const l = specs.get(name);
    if (l?.kind !== "conv") throw new Error(`no conv layer ${name}`);
    const k = weight(`${name}/kernel`, [l.filters, l.inChannels, l.kernel, l.kernel]);
    return g.node("Conv", name, [x, k], { kernel_shape: [l.kernel, l.kernel], strides: [stride, stride], pads: [pad, pad, pad, pad], dilations: [1, 1], group: 1 });
  };
  const bn = (name: string, x: string): string => {
    const l = specs.get(name);
    if (l?.kind !== "bn") throw new Error(`no BN layer ${name}`);
    const ins = KERAS_WEIGHTS.bn.map((w) => weight(`${name}/${w}`, [l.channels]));
    return g.node("BatchNormalization", name, [x, ...ins], { epsilon: f(BN_EPSILON) });
  };
  const relu = (name: string, x: string, out = name): string => g.node("Relu", name, [x], {}, [out]);

  let x = g.input(INPUT_NAME, ["N", 3, S, S]);
  // ZeroPadding2D(3) then a valid 7x7/2 conv == a conv with symmetric pads of 3.
  x = relu("conv1/relu", bn("conv1/bn", conv("conv1/conv", x, 2, 3)));
  // Keras: ZeroPadding2D(1) then MaxPooling2D(3, 2) valid. Its input is a ReLU output (>= 0) and every window
  // holds at least one real value, so zero padding and MaxPool's own (-inf) padding give identical maxima.
  x = g.node("MaxPool", "pool1", [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  BLOCKS.forEach((count, bi) => {
    const stage = bi + 2;
    for (let i = 1; i <= count; i++) {
      const p = `conv${stage}_block${i}`;
      let y = relu(`${p}_0_relu`, bn(`${p}_0_bn`, x));
      y = relu(`${p}_1_relu`, bn(`${p}_1_bn`, conv(`${p}_1_conv`, y, 1, 0)));
      y = conv(`${p}_2_conv`, y, 1, 1); // padding="same" for 3x3 stride 1 is 1 on every side
      x = g.node("Concat", `${p}_concat`, [x, y], { axis: 1 });
    }
    if (stage < 5) {
      const p = `pool${stage}`;
      const y = conv(`${p}_conv`, relu(`${p}_relu`, bn(`${p}_bn`, x)), 1, 0);
      x = g.node("AveragePool", `${p}_pool`, [y], { kernel_shape: [2, 2], strides: [2, 2] });
    }
  });
  x = relu("relu", bn("bn", x), FEATURES_OUTPUT);
  if (classes > 0) {
    const pooled = g.node("GlobalAveragePool", "avg_pool", [x]);
    const flat = g.node("Flatten", "avg_pool/flatten", [pooled], { axis: 1 });
    const kernel = weight(HEAD_KERNEL, [FEATURE_CHANNELS, classes]);
    const bias = weight(HEAD_BIAS, [classes]);
    const logits = g.node("Gemm", "logits", [flat, kernel, bias], { alpha: f(1), beta: f(1), transA: 0, transB: 0 });
    g.node("Sigmoid", PROBABILITIES_OUTPUT, [logits]);
    g.output(PROBABILITIES_OUTPUT, ["N", classes]);
  }
  g.output(FEATURES_OUTPUT, ["N", FEATURE_CHANNELS, grid, grid]);
  for (const name of opts.extraOutputs ?? []) {
    const node = g.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`extra output ${name}: no such node in the ${opts.part ?? "full"} graph`);
    if (g.outputs.some((o) => o.name === node.output![0])) continue;
    g.output(node.output![0]!, ["N", `${name}_c`, `${name}_h`, `${name}_w`].slice(0, node.opType === "Gemm" ? 2 : 4));
  }
  const unused = [...opts.weights.keys()].filter((k) => !g.initializers.some((t) => t.name === k));
  if (unused.length > 0) throw new Error(`weights not used by the ${opts.part ?? "full"} graph: ${unused.slice(0, 5).join(", ")}${unused.length > 5 ? ", ..." : ""}`);
  return g.toModel({
    docString: opts.part === "trunk" ? "Keras DenseNet121(include_top=False) trunk: image -> features" : `Keras DenseNet121(include_top=False) + GlobalAveragePooling2D + Dense(${classes}, sigmoid)`,
    metadata: opts.metadata,
  });
}

/** The serialized .onnx bytes of buildDenseNet121Model. */
export function buildDenseNet121Onnx(opts: BuildOptions): Uint8Array {
  return encodeModel(buildDenseNet121Model(opts));
}

/** Only the trunk's weights (drops the head), e.g. to build a feature extractor from a full weight map. */
export function trunkWeights(weights: WeightMap): WeightMap {
  return new Map([...weights].filter(([k]) => !k.startsWith(`${HEAD_LAYER}/`)));
}

export type { Weight, WeightMap };
