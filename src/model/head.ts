import { FEATURES_OUTPUT } from "./densenet121.ts";
import { tensorDims, tensorFloats, type IModelProto, type INodeProto, type ITensorProto } from "./onnx-builder.ts";

/**
 * The linear classifier on the pooled features: logit_l = bias_l + sum_c mean(A_c) * kernel[c][l], A being the
 * `features` output. With GAP + Dense, d logit_l / d A_c(y,x) = kernel[c][l] / (H*W) everywhere, so
 * GradCAM_l = ReLU(sum_c kernel[c][l] * A_c) up to a positive scale.
 *
 * Every model folder cxr writes has the same head structure: `features` -> GlobalAveragePool -> Flatten ->
 * Gemm(B = `predictions/kernel` [C, L], C = `predictions/bias` [L]) whose L outputs are the card's labels in
 * card order (imports are rewritten into it, see onnx-import.ts).
 */
export interface ClassifierHead {
  /** [channels][classes] row-major (Keras Dense layout). */
  kernel: Float32Array;
  bias: Float32Array;
  channels: number;
  classes: number;
}

export interface LinearAfterPool extends ClassifierHead {
  /** The pooling node, and the nodes of the linear layer (Gemm, or MatMul + Add). */
  pool: INodeProto;
  linear: INodeProto[];
  /** The tensor the linear layer reads (the flattened pooled features) and the one it writes. */
  input: string;
  output: string;
}

const PASS_THROUGH = ["Flatten", "Reshape", "Squeeze", "Identity", "Dropout"];
const POOLS = ["GlobalAveragePool", "AveragePool", "ReduceMean"];

/** Finds pooling -> (flatten ...) -> Gemm | MatMul [+ Add] after the 4D tensor `features`, with constant weights. */
export function findLinearAfterPool(model: IModelProto, features: string, source = "ONNX model"): LinearAfterPool {
  const nodes = model.graph?.node ?? [];
  const inits = new Map<string, ITensorProto>((model.graph?.initializer ?? []).map((t) => [t.name!, t]));
  for (const n of nodes) {
    const v = n.opType === "Constant" ? n.attribute?.find((a) => a.name === "value")?.t : undefined;
    if (v && n.output?.[0]) inits.set(n.output[0], { ...v, name: n.output[0] });
  }
  const consumers = (t: string) => nodes.filter((n) => (n.input ?? []).includes(t));
  const fail = (why: string): never => {
    throw new Error(`${source}: cannot read the classifier head after ${features} — ${why} (exact GradCAM needs features -> global average pooling -> dense layer)`);
  };
  const pool = consumers(features).find((n) => POOLS.includes(n.opType!)) ?? fail("no average pooling reads it");
  let t = pool.output![0]!;
  let lin: INodeProto | undefined;
  for (let steps = 0; steps < 8 && !lin; steps++) {
    const next = consumers(t);
    const linear = next.find((n) => n.opType === "Gemm" || n.opType === "MatMul");
    if (linear) lin = linear;
    else if (next.length === 1 && PASS_THROUGH.includes(next[0]!.opType!)) t = next[0]!.output![0]!;
    else fail(`the pooled features go to ${next.map((n) => n.opType).join(", ") || "nothing"}`);
  }
  if (!lin) fail("no Gemm/MatMul after the pooling");
  const linear = lin!;
  if (linear.input![0] !== t) fail(`${linear.opType} ${linear.name} takes the pooled features as its second operand`);
  const init = (name: string | undefined, what: string): ITensorProto => (name && inits.get(name)) || fail(`its ${what} (${name}) is not a constant`);
  const B = init(linear.input![1], "weight");
  const bDims = tensorDims(B);
  const bData = tensorFloats(B, source);
  if (bDims.length !== 2) fail(`weight ${B.name} has rank ${bDims.length}`);
  const attr = (name: string, dflt: number) => {
    const a = (linear.attribute ?? []).find((x) => x.name === name);
    return a ? (a.type === 1 ? (a.f ?? dflt) : Number(a.i ?? dflt)) : dflt;
  };
  let kernel: Float32Array, channels: number, classes: number;
  let bias: Float32Array;
  const nodesOfLinear = [linear];
  let output = linear.output![0]!;
  if (linear.opType === "Gemm") {
    if (attr("transA", 0) !== 0) fail("Gemm with transA=1");
    const transB = attr("transB", 0) !== 0;
    const alpha = attr("alpha", 1), beta = attr("beta", 1);
    [channels, classes] = transB ? [bDims[1]!, bDims[0]!] : [bDims[0]!, bDims[1]!];
    kernel = new Float32Array(channels * classes);
    for (let c = 0; c < channels; c++) for (let l = 0; l < classes; l++) kernel[c * classes + l] = alpha * (transB ? bData[l * channels + c]! : bData[c * classes + l]!);
    bias = new Float32Array(classes);
    if (linear.input![2]) {
      const cb = tensorFloats(init(linear.input![2], "bias"), source);
      for (let l = 0; l < classes; l++) bias[l] = beta * cb[cb.length === 1 ? 0 : l]!;
    }
  } else {
    [channels, classes] = [bDims[0]!, bDims[1]!];
    kernel = bData;
    bias = new Float32Array(classes);
    const after = consumers(output);
    const add = after.length === 1 && after[0]!.opType === "Add" ? after[0]! : undefined;
    const other = add?.input?.find((i) => i !== output);
    if (add && other && inits.has(other)) {
      const cb = tensorFloats(inits.get(other)!, source);
      for (let l = 0; l < classes; l++) bias[l] = cb[cb.length === 1 ? 0 : l]!;
      nodesOfLinear.push(add);
      output = add.output![0]!;
    }
  }
  return { kernel, bias, channels, classes, pool, linear: nodesOfLinear, input: t, output };
}

/** The head of a model folder's ONNX (built or imported), in card label order. */
export function readClassifierHead(model: IModelProto, source = "ONNX model"): ClassifierHead {
  const { kernel, bias, channels, classes } = findLinearAfterPool(model, FEATURES_OUTPUT, source);
  return { kernel, bias, channels, classes };
}
