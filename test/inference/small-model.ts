import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { buildModelCard, writeModelCard } from "../../src/model/card.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { seededRandom } from "../../src/model/rng.ts";

const { onnx } = onnxProto;

function floatTensor(name: string, dims: number[], data: Float32Array) {
  return onnx.TensorProto.create({
    name, dims, dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  });
}

function valueInfo(name: string, dims: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === "string" ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

const attrInt = (name: string, i: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
const attrInts = (name: string, ints: number[]) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints });

export interface SmallModel {
  bytes: Uint8Array;
  /** Classifier weights, [classes][channels], and bias. */
  weights: Float32Array[];
  bias: Float32Array;
  channels: number;
  classes: number;
}

/**
 * Input [N,3,S,S] → Conv 3x3 stride 4 (C channels) → Relu = "features" → GlobalAveragePool → Flatten →
 * head → Sigmoid = "probabilities". The head is `Gemm(transB=1)` (W [classes,C], as the DenseNet builder
 * writes it) or `MatMul + Add` (W [C,classes], as PyTorch/Keras exports often are) so GradCAM's weight
 * reader is exercised on both.
 * With `featuresAsInput` the graph starts at the feature map (input "features" [N,C,h,w]) and outputs the
 * logits: the model the finite-difference test perturbs.
 */
export function buildSmallModel(opts: { seed: number; channels?: number; classes?: number; head?: "gemm" | "matmul"; featuresAsInput?: boolean; singleOutput?: boolean }): SmallModel {
  const rnd = seededRandom(opts.seed);
  const C = opts.channels ?? 8;
  const K = opts.classes ?? 14;
  const conv = new Float32Array(C * 3 * 3 * 3).map(() => (rnd() - 0.5) * 0.6);
  const convBias = new Float32Array(C).map(() => (rnd() - 0.3) * 0.2);
  const weights = Array.from({ length: K }, () => new Float32Array(C).map(() => (rnd() - 0.5) * 2));
  const bias = new Float32Array(K).map(() => (rnd() - 0.5) * 0.5);
  const head = opts.head ?? "gemm";

  const nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  const initializer = [];
  if (!opts.featuresAsInput) {
    initializer.push(floatTensor("conv_w", [C, 3, 3, 3], conv), floatTensor("conv_b", [C], convBias));
    nodes.push(
      onnx.NodeProto.create({ opType: "Conv", input: ["input", "conv_w", "conv_b"], output: ["conv_out"], name: "conv",
        attribute: [attrInts("kernel_shape", [3, 3]), attrInts("strides", [4, 4]), attrInts("pads", [1, 1, 1, 1])] }),
      onnx.NodeProto.create({ opType: "Relu", input: ["conv_out"], output: ["features"], name: "relu" }),
    );
  }
  nodes.push(
    onnx.NodeProto.create({ opType: "GlobalAveragePool", input: ["features"], output: ["gap"], name: "gap" }),
    onnx.NodeProto.create({ opType: "Flatten", input: ["gap"], output: ["gap_flat"], name: "flatten", attribute: [attrInt("axis", 1)] }),
  );
  if (head === "gemm") {
    const w = new Float32Array(K * C);
    weights.forEach((row, k) => w.set(row, k * C));
    initializer.push(floatTensor("dense_w", [K, C], w), floatTensor("dense_b", [K], bias));
    nodes.push(onnx.NodeProto.create({ opType: "Gemm", input: ["gap_flat", "dense_w", "dense_b"], output: ["logits"], name: "dense", attribute: [attrInt("transB", 1)] }));
  } else {
    const w = new Float32Array(C * K);
    for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) w[c * K + k] = weights[k]![c]!;
    initializer.push(floatTensor("dense_w", [C, K], w), floatTensor("dense_b", [K], bias));
    nodes.push(
      onnx.NodeProto.create({ opType: "MatMul", input: ["gap_flat", "dense_w"], output: ["mm"], name: "dense_mm" }),
      onnx.NodeProto.create({ opType: "Add", input: ["mm", "dense_b"], output: ["logits"], name: "dense_add" }),
    );
  }
  const outputs = [];
  if (opts.featuresAsInput) {
    outputs.push(valueInfo("logits", ["N", K]));
  } else {
    nodes.push(onnx.NodeProto.create({ opType: "Sigmoid", input: ["logits"], output: ["probabilities"], name: "sigmoid" }));
    outputs.push(valueInfo("probabilities", ["N", K]));
    if (!opts.singleOutput) outputs.push(valueInfo("features", ["N", C, "h", "w"]));
  }
  const graph = onnx.GraphProto.create({
    name: "small",
    node: nodes,
    initializer,
    input: [opts.featuresAsInput ? valueInfo("features", ["N", C, "h", "w"]) : valueInfo("input", ["N", 3, "S", "S"])],
    output: outputs,
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], producerName: "cxr-triage-test", graph });
  return { bytes: onnx.ModelProto.encode(model).finish(), weights, bias, channels: C, classes: K };
}

/** A model folder as the Classifier reads it: model.onnx + model-card.json (card as in docs/ARCHITECTURE.md). */
export function writeSmallModelDir(dir: string, model: SmallModel, size = 64): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "model.onnx"), model.bytes);
  const labels = NIH_LABELS.slice(0, model.classes).map((name, i) => ({
    name,
    code: { value: `T-${i}`, scheme: "99TEST", meaning: name },
    threshold: 0.3 + 0.03 * i,
    thresholdMethod: "test value",
  }));
  writeModelCard(dir, buildModelCard(onnx.ModelProto.decode(model.bytes), {
    name: "small-test-model", manufacturer: "cxr-triage tests",
    architecture: "Conv3x3 + GAP + Dense(14, sigmoid)",
    labels,
    input: { size, layout: "NCHW", pixelScale: 255, mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
    outputs: { probabilities: "probabilities", features: "features" },
    training: { summary: "untrained — random weights" },
    now: new Date("2026-01-01T00:00:00Z"),
  }));
  return dir;
}
