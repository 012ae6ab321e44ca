import { FEATURES_OUTPUT, PROBABILITIES_OUTPUT } from "./densenet121.ts";
import { tensorDims, tensorFloats, tensorInt64s, type IModelProto, type INodeProto, type ITensorProto } from "./onnx-builder.ts";

/** Initializer of an imported model holding, per card label, its slot in the model's own output. */
export const LABEL_SLOTS = "cxr_label_slots";

/**
 * The linear classifier on the pooled features, in card label order: logit_l = bias_l + sum_c mean(A_c) * kernel[c][l],
 * where A is the `features` output. With GAP + Dense, d logit_l / d A_c(y,x) = kernel[c][l] / (H*W) everywhere,
 * so GradCAM_l = ReLU(sum_c kernel[c][l] * A_c) up to a positive scale.
 */
export interface ClassifierHead {
  /** [channels][classes] row-major (Keras Dense layout). */
  kernel: Float32Array;
  bias: Float32Array;
  channels: number;
  classes: number;
}

/**
 * Reads the head of a cxr model (built: `predictions/kernel` in a Gemm; imported: the source model's Gemm or
 * MatMul+Add after its global average pooling, with columns picked by `cxr_label_slots`) by following the graph
 * from the `features` output, so it works for every model folder cxr writes.
 */
export function readClassifierHead(model: IModelProto, source = "ONNX model"): ClassifierHead {
  const nodes = model.graph?.node ?? [];
  const inits = new Map<string, ITensorProto>((model.graph?.initializer ?? []).map((t) => [t.name!, t]));
  const consumers = (t: string) => nodes.filter((n) => (n.input ?? []).includes(t));
  const fail = (why: string): never => {
    throw new Error(`${source}: cannot read the classifier head — ${why}`);
  };
  const featProducer = nodes.find((n) => (n.output ?? []).includes(FEATURES_OUTPUT)) ?? fail(`no node produces "${FEATURES_OUTPUT}"`);
  const feat = featProducer.opType === "Identity" ? featProducer.input![0]! : FEATURES_OUTPUT;
  const pool = consumers(feat).find((n) => ["GlobalAveragePool", "AveragePool", "ReduceMean"].includes(n.opType!)) ?? fail(`no average pooling consumes the feature map ${feat}`);

  let t = pool.output![0]!;
  let linear: INodeProto | undefined;
  for (let steps = 0; steps < 8 && !linear; steps++) {
    const next = consumers(t);
    if (next.length !== 1) fail(`the pooled features ${t} feed ${next.length} nodes, expected one path to the classifier`);
    const n = next[0]!;
    if (n.opType === "Gemm" || n.opType === "MatMul") linear = n;
    else if (["Flatten", "Reshape", "Squeeze", "Identity", "Dropout"].includes(n.opType!)) t = n.output![0]!;
    else fail(`unexpected ${n.opType} between the pooling and the classifier`);
  }
  if (!linear) fail("no Gemm/MatMul after the pooling");
  const lin = linear!;
  const init = (name: string | undefined, what: string): ITensorProto => (name && inits.get(name)) || fail(`the classifier's ${what} (${name}) is not an initializer`);
  const B = init(lin.input![1], "weight");
  const bDims = tensorDims(B);
  const bData = tensorFloats(B, source);
  const attr = (name: string, dflt: number) => {
    const a = (lin.attribute ?? []).find((x) => x.name === name);
    return a ? (a.f !== undefined && a.f !== null && a.type === 1 ? a.f : Number(a.i ?? dflt)) : dflt;
  };
  if (bDims.length !== 2) fail(`weight ${B.name} has rank ${bDims.length}`);
  let kernel: Float32Array, channels: number, classes: number, bias: Float32Array;
  if (lin.opType === "Gemm") {
    if (attr("transA", 0) !== 0) fail("Gemm with transA=1");
    const transB = attr("transB", 0) !== 0;
    const alpha = attr("alpha", 1), beta = attr("beta", 1);
    [channels, classes] = transB ? [bDims[1]!, bDims[0]!] : [bDims[0]!, bDims[1]!];
    kernel = new Float32Array(channels * classes);
    for (let c = 0; c < channels; c++) for (let l = 0; l < classes; l++) kernel[c * classes + l] = alpha * (transB ? bData[l * channels + c]! : bData[c * classes + l]!);
    bias = lin.input![2] ? tensorFloats(init(lin.input![2], "bias"), source).map((v) => v * beta) : new Float32Array(classes);
  } else {
    [channels, classes] = [bDims[0]!, bDims[1]!];
    kernel = bData;
    const add = consumers(lin.output![0]!).find((n) => n.opType === "Add");
    const other = add?.input?.find((i) => i !== lin.output![0]);
    bias = other && inits.has(other) ? tensorFloats(inits.get(other)!, source) : new Float32Array(classes);
  }
  if (bias.length !== classes) fail(`bias has ${bias.length} values for ${classes} classes`);

  // Imported models pick (and reorder) their output slots into the card's labels.
  const gather = nodes.find((n) => n.opType === "Gather" && n.input?.[1] === LABEL_SLOTS);
  if (!gather) {
    if (!nodes.some((n) => (n.output ?? []).includes(PROBABILITIES_OUTPUT))) fail(`no "${PROBABILITIES_OUTPUT}" output`);
    return { kernel, bias, channels, classes };
  }
  const slots = tensorInt64s(init(LABEL_SLOTS, "label slots"), source);
  const picked = new Float32Array(channels * slots.length);
  for (let c = 0; c < channels; c++) slots.forEach((s, j) => (picked[c * slots.length + j] = kernel[c * classes + s]!));
  return { kernel: picked, bias: Float32Array.from(slots, (s) => bias[s]!), channels, classes: slots.length };
}
