import { decodeModel, encodeModel, type ModelProto } from "../model/onnx-builder.ts";

export interface ModelInput {
  name: string;
  /** Numbers for fixed dimensions, strings for symbolic ones (e.g. a dynamic batch). */
  dims: (number | string)[];
}

/** The graph's data input (graph inputs that are not initializers): its name and whether the batch is dynamic. */
export function modelInput(model: ModelProto, where: string): ModelInput {
  const graph = model.graph;
  if (!graph) throw new Error(`${where}: the ONNX file has no graph`);
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) throw new Error(`${where}: expected one image input, found ${inputs.length} (${inputs.map((i) => i.name).join(", ")})`);
  const vi = inputs[0]!;
  const dims = (vi.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : "?"));
  return { name: vi.name ?? "", dims };
}

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
