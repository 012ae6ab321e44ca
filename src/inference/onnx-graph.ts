import type { ClassifierHead } from "../model/head.ts";
import { decodeModel, ElemType, encodeModel, floatTensor, valueInfo, type ModelProto } from "../model/onnx-builder.ts";

/** The same model with only the named graph outputs kept (e.g. probabilities only, for a baseline). */
export function keepOutputs(bytes: Uint8Array, names: string[], where: string): Uint8Array {
  const model = decodeModel(bytes, where);
  const graph = model.graph;
  if (!graph) throw new Error(`${where}: no graph`);
  const outputs = graph.output ?? [];
  for (const n of names) if (!outputs.some((o) => o.name === n)) throw new Error(`${where}: no output "${n}"`);
  graph.output = outputs.filter((o) => names.includes(o.name ?? ""));
  return encodeModel(model);
}

/** The output `withClassActivationMaps` adds: [N, classes, H, W], ReLU(sum_c W_kc A_c) before normalisation. */
export const CAM_OUTPUT = "cxr_class_activation_maps";

/**
 * Adds exact GradCAM to the graph, in memory (the file is not changed): for features → GAP → Dense, GradCAM of
 * class k is ReLU(sum_c W_kc A_c) up to the positive factor 1/(H*W), which is a 1x1 convolution of the NCHW
 * feature map with the dense weights, then ReLU. Computed by the session itself, on the same provider, it costs
 * one small convolution and the maps come back instead of the 1024-channel feature map.
 */
export function withClassActivationMaps(model: ModelProto, featuresName: string, head: ClassifierHead, where: string): ModelProto {
  const graph = model.graph;
  if (!graph) throw new Error(`${where}: no graph`);
  const taken = new Set([...(graph.node ?? []).flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]), ...(graph.initializer ?? []).map((t) => t.name)]);
  const weightsName = `${CAM_OUTPUT}/weights`, convName = `${CAM_OUTPUT}/conv`;
  for (const n of [CAM_OUTPUT, weightsName, convName]) if (taken.has(n)) throw new Error(`${where}: the model already uses the name "${n}"`);
  const { channels: C, classes: K, kernel } = head;
  const w = new Float32Array(K * C); // Conv weight [K, C, 1, 1] from the dense kernel [C][K]
  for (let c = 0; c < C; c++) for (let k = 0; k < K; k++) w[k * C + c] = kernel[c * K + k]!;
  graph.initializer = [...(graph.initializer ?? []), floatTensor(weightsName, [K, C, 1, 1], w)];
  graph.node = [
    ...(graph.node ?? []),
    { opType: "Conv", name: convName, input: [featuresName, weightsName], output: [convName], attribute: [{ name: "kernel_shape", type: 7, ints: [1, 1] }] },
    { opType: "Relu", name: CAM_OUTPUT, input: [convName], output: [CAM_OUTPUT] },
  ];
  graph.output = [...(graph.output ?? []), valueInfo(CAM_OUTPUT, ElemType.FLOAT, ["N", K, "H", "W"])];
  return model;
}
