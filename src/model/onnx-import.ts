import { readFileSync } from "node:fs";
import { basename } from "node:path";
import * as ort from "onnxruntime-node";
import { z } from "zod";
import { defaultCardLabels, type CardInputSpec, type ModelCard } from "./card.ts";
import { FEATURES_OUTPUT, HEAD_BIAS, HEAD_KERNEL, INPUT_NAME, PROBABILITIES_OUTPUT } from "./densenet121.ts";
import { findLinearAfterPool, readClassifierHead } from "./head.ts";
import { isNihLabel, NIH_LABELS } from "./labels.ts";
import { saveModelDir } from "./model-dir.ts";
import { decodeModel, encodeModel, floatTensor, int64Tensor, modelInput, pruneUnusedInitializers, valueInfo, ElemType, type INodeProto, type ModelProto } from "./onnx-builder.ts";

/**
 * How a foreign classifier's outputs and input are to be read, for `cxr model import <file.onnx> --labels-map`.
 * Given as a JSON file or a builtin (`builtin:xrv`, `builtin:chexnet`).
 */
export interface LabelsMap {
  /** What the map describes, for the card (e.g. "torchxrayvision DenseNet121 (densenet121-res224-all)"). */
  description: string;
  /** The label of each output slot, in the model's order; names that are not NIH labels are ignored. */
  outputs: string[];
  /** The graph output holding those slots (default: the first graph output). */
  output?: string;
  /** "probability": outputs are already in [0,1] (the model ends in a sigmoid); "logit": a Sigmoid is added. */
  activation: "probability" | "logit";
  input: {
    /** 1: the model takes one (gray) channel, fed from channel 0 of cxr's 3-channel tensor; 3: RGB. */
    channels: 1 | 3;
    /** cxr's presentation values [0,1] are multiplied by pixelScale, then (x - mean) / std per channel. */
    pixelScale: number;
    mean: number | [number, number, number];
    std: number | [number, number, number];
    /** Square input size when the model's own input shape leaves it open. */
    size?: number;
  };
  /** Operating points per label (e.g. from the model's own calibration), with how they were chosen. */
  thresholds?: Record<string, number>;
  thresholdMethod?: string;
}

const triple = z.union([z.number(), z.tuple([z.number(), z.number(), z.number()])]);
const labelsMapSchema = z.object({
  description: z.string().min(1),
  outputs: z.array(z.string()).min(1),
  output: z.string().optional(),
  activation: z.enum(["probability", "logit"]),
  input: z.object({
    channels: z.union([z.literal(1), z.literal(3)]),
    pixelScale: z.number().positive(),
    mean: triple,
    std: triple,
    size: z.number().int().min(32).optional(),
  }),
  thresholds: z.record(z.string(), z.number().min(0).max(1)).optional(),
  thresholdMethod: z.string().optional(),
});

/** torchxrayvision's 18 output slots (xrv.datasets.default_pathologies) in their order. */
export const XRV_PATHOLOGIES = [
  "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis", "Effusion", "Pneumonia",
  "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
] as const;

/** CheXNet (Rajpurkar et al.) and its PyTorch reimplementations (e.g. arnoweng/CheXNet): 14 NIH labels, sigmoid in the model. */
export const CHEXNET_LABELS = [
  "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax", "Consolidation", "Edema",
  "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
] as const;

export const BUILTIN_LABELS_MAPS: Record<string, LabelsMap> = {
  // xrv.datasets.normalize(img, 255) maps 8-bit [0,255] to [-1024,1024]; its DenseNet takes 1 channel at 224 and ends
  // in sigmoid (+ op_norm when op_threshs are set, which keeps every op_thresh at 0.5 — hence the default threshold).
  xrv: {
    description: "torchxrayvision DenseNet121 (18 outputs, 1-channel input scaled to [-1024, 1024])",
    outputs: [...XRV_PATHOLOGIES],
    activation: "probability",
    input: { channels: 1, pixelScale: 2048, mean: 1024, std: 1, size: 224 },
    thresholdMethod: "0.5 — torchxrayvision op_norm maps each label's operating point to 0.5 (when the export includes op_norm)",
  },
  chexnet: {
    description: "CheXNet-style PyTorch DenseNet121 (14 NIH outputs with sigmoid, ImageNet normalisation)",
    outputs: [...CHEXNET_LABELS],
    activation: "probability",
    input: { channels: 3, pixelScale: 1, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], size: 224 },
  },
};

/** `builtin:<name>` or a path to a JSON file with a LabelsMap. */
export function loadLabelsMap(spec: string): LabelsMap {
  if (spec.startsWith("builtin:")) {
    const m = BUILTIN_LABELS_MAPS[spec.slice("builtin:".length)];
    if (!m) throw new Error(`unknown labels map ${spec} (builtins: ${Object.keys(BUILTIN_LABELS_MAPS).map((k) => `builtin:${k}`).join(", ")})`);
    return m;
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(spec, "utf8"));
  } catch (err) {
    throw new Error(`${spec}: cannot read labels map (${(err as Error).message})`);
  }
  const r = labelsMapSchema.safeParse(json);
  if (!r.success) throw new Error(`${spec}: invalid labels map — ${r.error.issues.map((i) => `${i.path.join(".") || "(map)"}: ${i.message}`).join("; ")}`);
  return r.data as LabelsMap;
}

/** Initializer of an imported model holding, per card label, its slot in the model's own output. */
export const LABEL_SLOTS = "cxr_label_slots";

const asTriple = (v: number | [number, number, number]): [number, number, number] => (typeof v === "number" ? [v, v, v] : v);

function dimOf(d: { dimValue?: unknown; dimParam?: string | null } | undefined): number | undefined {
  const v = d?.dimValue;
  return v !== undefined && v !== null && Number(v) > 0 ? Number(v) : undefined;
}

export interface OnnxImportOptions {
  out: string;
  inputSize?: number;
  labelsMap?: LabelsMap;
  input?: Partial<Pick<CardInputSpec, "pixelScale" | "mean" | "std">>;
  name?: string;
  version?: string;
}

/**
 * Rewrites a foreign classifier into cxr's model contract, leaving its own computation untouched:
 *  - input `image` [N,3,S,S] NCHW: an Identity to the model's input, or, for 1-channel models, a 1x1 Conv
 *    with weights (1,0,0) that passes channel 0 exactly (cxr's tensor repeats a gray image in all three);
 *  - output `probabilities` [N,L]: Gather of the mapped slots of the model's output (+ Sigmoid for logits),
 *    in NIH label order, dropping slots that are not NIH labels;
 *  - output `features`: the 4D tensor entering the global average pooling before the classifier, so that
 *    GradCAM is exact. A model without that structure is refused (GradCAM could not be computed).
 * Then it runs the result once in onnxruntime to check that it loads and gives finite probabilities.
 */
export async function importOnnxClassifier(file: string, opts: OnnxImportOptions): Promise<ModelCard> {
  const map = opts.labelsMap;
  if (!map) throw new Error(`${file}: importing an ONNX model needs --labels-map <json|builtin:xrv|builtin:chexnet> to say which output is which label`);
  const model = decodeModel(readFileSync(file), file);
  const graph = model.graph;
  if (!graph) throw new Error(`${file}: ONNX model without a graph`);
  const opset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === "ai.onnx");
  if (!opset || Number(opset.version) < 11) throw new Error(`${file}: default-domain opset ${opset ? Number(opset.version) : "missing"}; opset >= 11 is needed (re-export with a newer opset_version)`);

  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const { name: srcName, dims: shape } = modelInput(model, file);
  if (shape.length !== 4) throw new Error(`${file}: input ${srcName} has rank ${shape.length}; an NCHW image input [N,C,H,W] is expected`);
  const fixed = (d: number | string | undefined) => (typeof d === "number" ? d : undefined);
  const channels = fixed(shape[1]);
  if (channels !== undefined && channels !== map.input.channels) throw new Error(`${file}: input ${srcName} has ${channels} channels but the labels map says ${map.input.channels} (is the input NHWC? only NCHW is supported)`);
  const [h, w] = [fixed(shape[2]), fixed(shape[3])];
  if (h !== undefined && w !== undefined && h !== w) throw new Error(`${file}: input ${srcName} is ${h}x${w}; only square inputs are supported`);
  const size = h ?? opts.inputSize ?? map.input.size;
  if (size === undefined) throw new Error(`${file}: the input size is not fixed in the model; give --input-size`);
  if (h !== undefined && opts.inputSize !== undefined && opts.inputSize !== h) throw new Error(`${file}: the model's input is fixed at ${h}x${h}, not ${opts.inputSize}`);

  const outName = map.output ?? graph.output?.[0]?.name;
  const srcOut = (graph.output ?? []).find((o) => o.name === outName);
  if (!srcOut) throw new Error(`${file}: no graph output ${outName} (outputs: ${(graph.output ?? []).map((o) => o.name).join(", ")})`);
  const outDims = srcOut.type?.tensorType?.shape?.dim ?? [];
  const slotsInModel = dimOf(outDims[outDims.length - 1]);
  if (slotsInModel !== undefined && slotsInModel !== map.outputs.length) throw new Error(`${file}: output ${outName} has ${slotsInModel} slots but the labels map lists ${map.outputs.length}`);

  // Card order: the NIH labels the model has, in cxr's standard order.
  const labels = NIH_LABELS.filter((l) => map.outputs.includes(l));
  if (labels.length === 0) throw new Error(`${file}: none of the labels map's outputs is an NIH label (${map.outputs.slice(0, 5).join(", ")}, ...)`);
  const slots = labels.map((l) => map.outputs.indexOf(l));
  const ignored = map.outputs.filter((l) => !isNihLabel(l));

  const taken = new Set<string | null | undefined>([...(graph.node ?? []).flatMap((n) => [...(n.output ?? []), ...(n.input ?? [])]), ...initNames, srcName]);
  for (const n of [INPUT_NAME, PROBABILITIES_OUTPUT, FEATURES_OUTPUT, LABEL_SLOTS]) if (taken.has(n)) throw new Error(`${file}: the model already uses the name "${n}"; cannot add cxr's input/outputs`);

  const featureTensor = findPooledFeatures(graph.node ?? [], outName!, file);
  const lin = findLinearAfterPool(model, featureTensor, file);
  if (lin.classes !== map.outputs.length) throw new Error(`${file}: the dense layer after the pooling has ${lin.classes} outputs but the labels map lists ${map.outputs.length}`);
  for (const n of [HEAD_KERNEL, HEAD_BIAS, "cxr_head", "cxr_other_slots", "cxr_slot_order"]) if (taken.has(n)) throw new Error(`${file}: the model already uses the name "${n}"`);

  // The feature map becomes the `features` output under that very name, so that the pooling reads `features`.
  const rename = (t: string) => (t === featureTensor ? FEATURES_OUTPUT : t);
  for (const n of graph.node ?? []) {
    n.input = (n.input ?? []).map(rename);
    n.output = (n.output ?? []).map(rename);
  }
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => v.name !== featureTensor);

  // Replace the dense layer by one whose outputs are the card's labels in card order (`predictions/*`, the same
  // names and layout as a built DenseNet121-14), plus one for the other slots; a Gather restores the model's own
  // slot order for whatever the model computes after its dense layer (sigmoid, op_norm, ...).
  const others = map.outputs.map((_, i) => i).filter((i) => !slots.includes(i));
  const columns = (cols: number[]) => {
    const k = new Float32Array(lin.channels * cols.length);
    for (let c = 0; c < lin.channels; c++) cols.forEach((s, j) => (k[c * cols.length + j] = lin.kernel[c * lin.classes + s]!));
    return { kernel: k, bias: Float32Array.from(cols, (s) => lin.bias[s]!) };
  };
  const head = columns(slots);
  graph.initializer!.push(floatTensor(HEAD_KERNEL, [lin.channels, slots.length], head.kernel), floatTensor(HEAD_BIAS, [slots.length], head.bias));
  const gemm = (name: string, input: string, k: string, b: string, out: string): INodeProto => ({ opType: "Gemm", name, input: [input, k, b], output: [out] });
  const replacement: INodeProto[] = [gemm("cxr_head", lin.input, HEAD_KERNEL, HEAD_BIAS, others.length || slots.some((s, i) => s !== i) ? "cxr_head" : lin.output)];
  if (others.length > 0) {
    const rest = columns(others);
    graph.initializer!.push(floatTensor("cxr_other_slots/kernel", [lin.channels, others.length], rest.kernel), floatTensor("cxr_other_slots/bias", [others.length], rest.bias));
    replacement.push({ opType: "Identity", name: "cxr_other_slots_in", input: [lin.input], output: ["cxr_other_slots_in"] });
    replacement.push(gemm("cxr_other_slots", "cxr_other_slots_in", "cxr_other_slots/kernel", "cxr_other_slots/bias", "cxr_other_slots"));
    replacement.push({ opType: "Concat", name: "cxr_all_slots", input: ["cxr_head", "cxr_other_slots"], output: ["cxr_all_slots"], attribute: [{ name: "axis", type: 2, i: 1 }] });
  }
  const permuted = [...slots, ...others];
  if (permuted.some((s, i) => s !== i)) {
    const inverse = map.outputs.map((_, s) => permuted.indexOf(s));
    graph.initializer!.push(int64Tensor("cxr_slot_order", [inverse.length], inverse));
    replacement.push({ opType: "Gather", name: "cxr_slot_order", input: [others.length ? "cxr_all_slots" : "cxr_head", "cxr_slot_order"], output: [lin.output], attribute: [{ name: "axis", type: 2, i: 1 }] });
  }
  const at = (graph.node ?? []).indexOf(lin.linear[0]!);
  graph.node = (graph.node ?? []).filter((n) => !lin.linear.includes(n));
  graph.node.splice(at, 0, ...replacement);

  const prefix: INodeProto[] = [];
  if (map.input.channels === 1) {
    graph.initializer!.push(floatTensor("cxr_channel0", [1, 3, 1, 1], new Float32Array([1, 0, 0])));
    prefix.push({ opType: "Conv", name: "cxr_channel0", input: [INPUT_NAME, "cxr_channel0"], output: [srcName], attribute: [{ name: "kernel_shape", type: 7, ints: [1, 1] }] });
  } else {
    prefix.push({ opType: "Identity", name: "cxr_image", input: [INPUT_NAME], output: [srcName] });
  }
  graph.initializer!.push(int64Tensor(LABEL_SLOTS, [slots.length], slots));
  const tail: INodeProto[] = [];
  if (map.activation === "logit") {
    tail.push({ opType: "Gather", name: "cxr_label_logits", input: [outName!, LABEL_SLOTS], output: ["cxr_label_logits"], attribute: [{ name: "axis", type: 2, i: 1 }] });
    tail.push({ opType: "Sigmoid", name: "cxr_probabilities", input: ["cxr_label_logits"], output: [PROBABILITIES_OUTPUT] });
  } else {
    tail.push({ opType: "Gather", name: "cxr_probabilities", input: [outName!, LABEL_SLOTS], output: [PROBABILITIES_OUTPUT], attribute: [{ name: "axis", type: 2, i: 1 }] });
  }
  graph.node = [...prefix, ...(graph.node ?? []), ...tail];
  graph.input = [valueInfo(INPUT_NAME, ElemType.FLOAT, ["N", 3, size, size])];
  // The input's old value info would now describe an intermediate tensor; drop it (its shape is inferred).
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => v.name !== srcName);
  // The replaced dense layer's weights (and anything else nothing reads) would be dead weight that ORT warns about.
  pruneUnusedInitializers(model);

  // Check the result loads and runs; the feature grid size comes from that run.
  const probe = await probeModel(model, size, file);
  graph.output = [valueInfo(PROBABILITIES_OUTPUT, ElemType.FLOAT, ["N", labels.length]), valueInfo(FEATURES_OUTPUT, ElemType.FLOAT, ["N", ...probe.featureDims.slice(1)])];
  const check = readClassifierHead(model, file);
  if (check.classes !== labels.length) throw new Error(`${file}: the rewritten head has ${check.classes} outputs, expected ${labels.length}`);

  const thresholds = Object.fromEntries(labels.filter((l) => map.thresholds?.[l] !== undefined).map((l) => [l, { threshold: map.thresholds![l]!, method: map.thresholdMethod ?? "given in the labels map" }]));
  if (map.thresholdMethod && !map.thresholds) for (const l of labels) thresholds[l] = { threshold: 0.5, method: map.thresholdMethod };
  const mean = asTriple(map.input.mean), std = asTriple(map.input.std);
  return saveModelDir(opts.out, model, {
    name: opts.name ?? `${basename(file)} (imported)`,
    version: opts.version,
    architecture: `${map.description}; imported ONNX, ${map.input.channels === 1 ? "1-channel input fed from channel 0" : "3-channel input"}, NCHW`,
    labels: defaultCardLabels(labels, thresholds),
    input: { size, layout: "NCHW", pixelScale: map.input.pixelScale, mean, std, ...opts.input },
    outputs: { probabilities: PROBABILITIES_OUTPUT, features: FEATURES_OUTPUT },
    training: {
      summary: `imported from ${basename(file)} (${map.description}); ${labels.length} of its ${map.outputs.length} output slots mapped to NIH labels${ignored.length ? ` (not used: ${ignored.join(", ")})` : ""}`,
    },
    source: {
      file: basename(file),
      format: `ONNX (opset ${Number(opset.version)})`,
      contents: "full model",
      ...(model.producerName && { writer: `${model.producerName}${model.producerVersion ? ` ${model.producerVersion}` : ""}` }),
      head: `the model's own dense layer after the pooling (${lin.classes} outputs), ${labels.length} mapped by the labels map (${map.activation === "logit" ? "sigmoid added" : "its own activation kept"})`,
    },
  });
}

/**
 * The 4D tensor entering the global average pooling that leads to the classifier output: walk back from the
 * output through its ancestors and take the nearest GlobalAveragePool, ReduceMean over H,W, or AveragePool.
 */
export function findPooledFeatures(nodes: INodeProto[], output: string, source: string): string {
  const producer = new Map<string, INodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const seen = new Set<string>();
  let frontier = [output];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const t of frontier) {
      const n = producer.get(t);
      if (!n || seen.has(n.name ?? t)) continue;
      seen.add(n.name ?? t);
      if (n.opType === "GlobalAveragePool" || n.opType === "AveragePool" || (n.opType === "ReduceMean" && isSpatialMean(n, nodes))) return n.input![0]!;
      next.push(...(n.input ?? []));
    }
    frontier = next;
  }
  throw new Error(`${source}: found no global average pooling before output ${output}; cxr needs the last 4D feature map (for exact GradCAM) — export a model that ends in GAP -> Linear, or add its feature map as an output named "features" yourself`);
}

function isSpatialMean(n: INodeProto, nodes: INodeProto[]): boolean {
  const attr = (n.attribute ?? []).find((a) => a.name === "axes");
  let axes = attr?.ints?.map(Number);
  if (!axes && n.input?.[1]) {
    const c = nodes.find((m) => m.opType === "Constant" && m.output?.[0] === n.input![1]);
    const t = c?.attribute?.find((a) => a.name === "value")?.t;
    if (t?.rawData) axes = Array.from(new BigInt64Array(Uint8Array.from(t.rawData).buffer), Number);
    else if (t?.int64Data) axes = t.int64Data.map(Number);
  }
  return !!axes && axes.length === 2 && axes.map((a) => (a < 0 ? a + 4 : a)).sort().join(",") === "2,3";
}

async function probeModel(model: ModelProto, size: number, source: string): Promise<{ featureDims: number[] }> {
  const saved = model.graph!.output;
  model.graph!.output = [valueInfo(PROBABILITIES_OUTPUT, ElemType.FLOAT, ["N", "L"]), valueInfo(FEATURES_OUTPUT, ElemType.FLOAT, ["N", "C", "h", "w"])];
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1, logSeverityLevel: 3 });
  } catch (err) {
    throw new Error(`${source}: the rewritten model does not load in onnxruntime (${(err as Error).message.split("\n")[0]})`);
  } finally {
    model.graph!.output = saved;
  }
  try {
    const r = await session.run({ [INPUT_NAME]: new ort.Tensor("float32", new Float32Array(3 * size * size).fill(0.5), [1, 3, size, size]) });
    const p = r[PROBABILITIES_OUTPUT]!.data as Float32Array;
    if (![...p].every((v) => Number.isFinite(v) && v >= 0 && v <= 1)) throw new Error(`${source}: probabilities outside [0,1] on a test input (${[...p].slice(0, 4).join(", ")}...) — is "activation" in the labels map right?`);
    const dims = [...r[FEATURES_OUTPUT]!.dims];
    if (dims.length !== 4) throw new Error(`${source}: the pooled feature map has rank ${dims.length}, expected 4`);
    return { featureDims: dims };
  } finally {
    await session.release();
  }
}
