import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type Graph = onnxProto.onnx.IGraphProto;
/** A node with its optional protobuf fields filled in. */
interface Node { name: string; opType: string; input: string[]; output: string[]; attribute: onnxProto.onnx.IAttributeProto[] }
type TensorProto = onnxProto.onnx.ITensorProto;

/** The dense head after global average pooling: logit_k = sum_c weights[k*channels + c] * pooled_c + bias_k. */
export interface ClassifierHead {
  classes: number;
  channels: number;
  /** [classes][channels], row-major by class. */
  weights: Float32Array;
  bias: Float32Array;
  /** The node names that were read, for error messages and audits. */
  nodes: string[];
}

export interface ModelInput {
  name: string;
  /** Numbers for fixed dimensions, strings for symbolic ones (e.g. a dynamic batch). */
  dims: (number | string)[];
}

export function decodeModel(bytes: Uint8Array): InstanceType<typeof onnx.ModelProto> {
  return onnx.ModelProto.decode(bytes);
}

/** The graph's data input (graph inputs that are not initializers). */
export function modelInput(bytes: Uint8Array, where: string): ModelInput {
  const graph = requireGraph(bytes, where);
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) throw new Error(`${where}: expected one image input, found ${inputs.length} (${inputs.map((i) => i.name).join(", ")})`);
  const vi = inputs[0]!;
  const dims = (vi.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : "?"));
  return { name: vi.name ?? "", dims };
}

/** The same model with only the named graph outputs kept (e.g. probabilities only, for a baseline). */
export function keepOutputs(bytes: Uint8Array, names: string[], where: string): Uint8Array {
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph) throw new Error(`${where}: no graph`);
  const outputs = graph.output ?? [];
  for (const n of names) if (!outputs.some((o) => o.name === n)) throw new Error(`${where}: no output "${n}"`);
  graph.output = outputs.filter((o) => names.includes(o.name ?? ""));
  return onnx.ModelProto.encode(model).finish();
}

function requireGraph(bytes: Uint8Array, where: string): Graph {
  const graph = decodeModel(bytes).graph;
  if (!graph) throw new Error(`${where}: the ONNX file has no graph`);
  return graph;
}

function tensorFloats(t: TensorProto, where: string): { dims: number[]; data: Float32Array } {
  const dims = (t.dims ?? []).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  let data: Float32Array;
  if (t.dataType === onnx.TensorProto.DataType.FLOAT && t.rawData && t.rawData.length) {
    const raw = t.rawData;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
  } else if (t.dataType === onnx.TensorProto.DataType.FLOAT && t.floatData?.length) {
    data = Float32Array.from(t.floatData);
  } else if (t.dataType === onnx.TensorProto.DataType.DOUBLE && t.doubleData?.length) {
    data = Float32Array.from(t.doubleData);
  } else {
    throw new Error(`${where}: tensor "${t.name}" has data type ${t.dataType} or external data; GradCAM reads float32 weights stored in the file`);
  }
  if (data.length !== count) throw new Error(`${where}: tensor "${t.name}" has ${data.length} values for dims [${dims.join(",")}]`);
  return { dims, data };
}

/**
 * Reads the dense head that follows global average pooling of `featuresName`, as the exact-GradCAM needs
 * it: GlobalAveragePool (or ReduceMean over the spatial axes) → Flatten/Reshape/Squeeze/Identity* →
 * Gemm (any transB, alpha, beta) or MatMul (+ Add). Weights come from initializers or Constant nodes.
 */
export function readClassifierHead(bytes: Uint8Array, featuresName: string, where: string): ClassifierHead {
  const graph = requireGraph(bytes, where);
  const consts = new Map<string, TensorProto>();
  const allNodes: Node[] = (graph.node ?? []).map((n) => ({
    name: n.name ?? "", opType: n.opType ?? "", input: n.input ?? [], output: n.output ?? [], attribute: n.attribute ?? [],
  }));
  for (const t of graph.initializer ?? []) consts.set(t.name ?? "", t);
  for (const n of allNodes) {
    if (n.opType === "Constant") {
      const v = n.attribute.find((a) => a.name === "value")?.t;
      if (v && n.output[0]) consts.set(n.output[0], v);
    }
  }
  const consumers = (name: string): Node[] => allNodes.filter((n) => n.input.includes(name));
  const constant = (name: string | undefined, role: string) => {
    const t = name ? consts.get(name) : undefined;
    if (!t) throw new Error(`${where}: the ${role} "${name}" of the dense head is not a constant in the file; GradCAM needs fixed weights`);
    return tensorFloats(t, where);
  };
  const pooling = consumers(featuresName).find((n) => n.opType === "GlobalAveragePool" || n.opType === "ReduceMean");
  if (!pooling) throw new Error(`${where}: no GlobalAveragePool reads the features output "${featuresName}"; exact GradCAM needs features → GAP → Dense`);
  const nodes = [pooling.name || pooling.opType];

  let current = pooling.output[0]!;
  let next = consumers(current);
  while (next.length === 1 && ["Flatten", "Reshape", "Squeeze", "Identity"].includes(next[0]!.opType)) {
    nodes.push(next[0]!.name || next[0]!.opType);
    current = next[0]!.output[0]!;
    next = consumers(current);
  }
  const dense = next.find((n) => n.opType === "Gemm" || n.opType === "MatMul");
  if (!dense) throw new Error(`${where}: after pooling "${featuresName}" found ${next.map((n) => n.opType).join(", ") || "nothing"}, not a Gemm/MatMul dense head`);
  nodes.push(dense.name || dense.opType);

  let weightsKc: Float32Array; // [classes][channels]
  let classes: number, channels: number;
  let bias: Float32Array;
  if (dense.opType === "Gemm") {
    const attr = (n: string, d: number): number => { const a = dense.attribute.find((x) => x.name === n); return a ? (a.type === onnx.AttributeProto.AttributeType.FLOAT ? (a.f ?? d) : Number(a.i ?? d)) : d; };
    if (attr("transA", 0) !== 0) throw new Error(`${where}: Gemm "${dense.name}" with transA=1 is not a dense head on pooled features`);
    if (dense.input[0] !== current) throw new Error(`${where}: Gemm "${dense.name}" takes the pooled features as its second operand`);
    const alpha = attr("alpha", 1), beta = attr("beta", 1);
    const b = constant(dense.input[1], "weight");
    const transB = attr("transB", 0) !== 0;
    [classes, channels] = transB ? [b.dims[0]!, b.dims[1]!] : [b.dims[1]!, b.dims[0]!];
    weightsKc = new Float32Array(classes * channels);
    for (let k = 0; k < classes; k++) for (let c = 0; c < channels; c++) weightsKc[k * channels + c] = alpha * (transB ? b.data[k * channels + c]! : b.data[c * classes + k]!);
    bias = new Float32Array(classes);
    if (dense.input[2]) {
      const cb = constant(dense.input[2], "bias");
      for (let k = 0; k < classes; k++) bias[k] = beta * cb.data[cb.data.length === 1 ? 0 : k]!;
    }
  } else {
    if (dense.input[0] !== current) throw new Error(`${where}: MatMul "${dense.name}" takes the pooled features as its second operand`);
    const b = constant(dense.input[1], "weight");
    [channels, classes] = [b.dims[0]!, b.dims[1]!];
    weightsKc = new Float32Array(classes * channels);
    for (let k = 0; k < classes; k++) for (let c = 0; c < channels; c++) weightsKc[k * channels + c] = b.data[c * classes + k]!;
    bias = new Float32Array(classes);
    const add = consumers(dense.output[0]!).find((n) => n.opType === "Add");
    if (add) {
      const other = add.input.find((i) => i !== dense.output[0]);
      if (other && consts.has(other)) {
        const cb = constant(other, "bias");
        for (let k = 0; k < classes; k++) bias[k] = cb.data[cb.data.length === 1 ? 0 : k]!;
        nodes.push(add.name || add.opType);
      }
    }
  }
  return { classes, channels, weights: weightsKc, bias, nodes };
}
