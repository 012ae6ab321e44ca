import onnxProto from "onnx-proto";

/**
 * A small typed layer over `onnx-proto` (the ONNX schema compiled for protobufjs): the project writes and
 * rewrites its ONNX graphs with this, never by hand-encoding protobuf.
 */
export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type IModelProto = onnxProto.onnx.IModelProto;
export type INodeProto = onnxProto.onnx.INodeProto;
export type ITensorProto = onnxProto.onnx.ITensorProto;
export type IValueInfoProto = onnxProto.onnx.IValueInfoProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

/** Opset of the default ("ai.onnx") domain the project writes: 17 (BatchNormalization-15, Gemm-13, ...). */
export const OPSET = 17;
/** IR version 8 is what onnx-proto's schema (ONNX 1.10) knows and what opset 17 models may use. */
export const IR_VERSION = 8;

export const ElemType = { FLOAT: 1, INT64: 7 } as const;

/** A float attribute (a bare `number` attribute is an INT, `number[]` is INTS). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export type AttrValue = number | number[] | string | FloatAttr;

export function f(value: number): FloatAttr {
  return new FloatAttr(value);
}

function attribute(name: string, v: AttrValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (v instanceof FloatAttr) return { name, type: T.FLOAT, f: v.value };
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer (use f() for floats)`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === "string") return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  return { name, type: T.INTS, ints: v };
}

/** A dimension: a number, or a name for a symbolic dimension (the batch is "N"). */
export type Dim = number | string;

export function valueInfo(name: string, elemType: number, shape: Dim[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** float32 tensor as raw_data (little-endian, which is what every platform Node runs on uses). */
export function floatTensor(name: string, dims: number[], data: Float32Array): ITensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims.join(",")}] (${n})`);
  return { name, dims, dataType: ElemType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function int64Tensor(name: string, dims: number[], values: number[]): ITensorProto {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims, dataType: ElemType.INT64, rawData: new Uint8Array(data.buffer) };
}

export interface ModelOptions {
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

/** Collects nodes, initializers, inputs and outputs of one graph and writes an opset-17 ModelProto. */
export class GraphBuilder {
  readonly nodes: INodeProto[] = [];
  readonly initializers: ITensorProto[] = [];
  readonly inputs: IValueInfoProto[] = [];
  readonly outputs: IValueInfoProto[] = [];
  private readonly names = new Set<string>();

  constructor(readonly name: string) {}

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`duplicate tensor name in graph ${this.name}: ${name}`);
    this.names.add(name);
  }

  input(name: string, shape: Dim[], elemType: number = ElemType.FLOAT): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  output(name: string, shape: Dim[], elemType: number = ElemType.FLOAT): string {
    this.outputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  floatInitializer(name: string, dims: number[], data: Float32Array): string {
    this.claim(name);
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }

  int64Initializer(name: string, dims: number[], values: number[]): string {
    this.claim(name);
    this.initializers.push(int64Tensor(name, dims, values));
    return name;
  }

  /** Adds a node; returns its first output's name (the node's name unless `outputs` is given). */
  node(opType: string, name: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs: string[] = [name]): string {
    for (const o of outputs) this.claim(o);
    this.nodes.push({
      opType,
      name,
      input: inputs,
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs[0]!;
  }

  toModel(opts: ModelOptions = {}): ModelProto {
    return onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: "", version: OPSET }],
      producerName: opts.producerName ?? "cxr-triage",
      producerVersion: opts.producerVersion ?? "",
      docString: opts.docString ?? "",
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
  }
}

export function encodeModel(model: onnxProto.onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

export function decodeModel(bytes: Uint8Array, source = "ONNX model"): ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new Error(`${source}: not an ONNX model (${(err as Error).message})`);
  }
}

/** The float32 values of an initializer (raw_data or float_data), copied so they are aligned and owned. */
export function tensorFloats(t: ITensorProto, source = "ONNX model"): Float32Array {
  if (t.dataType !== ElemType.FLOAT) throw new Error(`${source}: initializer ${t.name} is not float32 (data type ${t.dataType})`);
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData.length);
    copy.set(t.rawData);
    return new Float32Array(copy.buffer);
  }
  if (t.floatData && t.floatData.length > 0) return Float32Array.from(t.floatData);
  if (t.externalData && t.externalData.length > 0) throw new Error(`${source}: initializer ${t.name} uses external data, which is not supported (save the model with all weights inside the .onnx file)`);
  return new Float32Array(0);
}

export function tensorDims(t: ITensorProto): number[] {
  return (t.dims ?? []).map((d) => Number(d));
}

export interface ModelInput {
  name: string;
  /** Numbers for fixed dimensions, strings for symbolic ones (e.g. a dynamic batch). */
  dims: (number | string)[];
}

/** The graph's data input (graph inputs that are not initializers): its name and whether the batch is dynamic. */
export function modelInput(model: IModelProto, where: string): ModelInput {
  const graph = model.graph;
  if (!graph) throw new Error(`${where}: the ONNX file has no graph`);
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) throw new Error(`${where}: expected one image input, found ${inputs.length} (${inputs.map((i) => i.name).join(", ")})`);
  const vi = inputs[0]!;
  const dims = (vi.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : "?"));
  return { name: vi.name ?? "", dims };
}

/** Named float weights with their shapes: how weights move between builder, importers and trainers. */
export interface Weight {
  dims: number[];
  data: Float32Array;
}
export type WeightMap = Map<string, Weight>;

/** All float32 initializers of a model, by name. */
export function readInitializers(model: onnxProto.onnx.IModelProto, source = "ONNX model"): WeightMap {
  const out: WeightMap = new Map();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== ElemType.FLOAT || !t.name) continue;
    out.set(t.name, { dims: tensorDims(t), data: tensorFloats(t, source) });
  }
  return out;
}

/** Every tensor name a node reads, including nodes of subgraphs (If/Loop bodies read outer-scope initializers). */
function namesRead(nodes: INodeProto[] | null | undefined, into: Set<string>): Set<string> {
  for (const n of nodes ?? []) {
    for (const i of n.input ?? []) into.add(i);
    for (const a of n.attribute ?? []) for (const g of [a.g, ...(a.graphs ?? [])]) if (g) namesRead(g.node, into);
  }
  return into;
}

/**
 * Drops initializers that no node reads and no graph output names (e.g. a foreign classifier's original head
 * after the import replaced it), so the written model holds only what it computes with and onnxruntime has
 * nothing to warn about on load. Returns the dropped names.
 */
export function pruneUnusedInitializers(model: IModelProto): string[] {
  const graph = model.graph;
  if (!graph) return [];
  const used = namesRead(graph.node, new Set((graph.output ?? []).map((o) => o.name ?? "")));
  const dropped = (graph.initializer ?? []).filter((t) => !used.has(t.name ?? "")).map((t) => t.name ?? "");
  graph.initializer = (graph.initializer ?? []).filter((t) => used.has(t.name ?? ""));
  graph.input = (graph.input ?? []).filter((i) => !dropped.includes(i.name ?? ""));
  return dropped;
}
