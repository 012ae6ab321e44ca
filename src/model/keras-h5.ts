import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import h5wasm from "h5wasm/node";
import { denseNet121Layers } from "./densenet121.ts";
import { canonicalLayerName, type SourceTensor } from "./densenet121-weights.ts";

/**
 * Reads the weights of a Keras HDF5 file in either generation's layout, by content:
 *  - Keras 2 (`save_weights` → e.g. the seed's `densenet.hdf5`; `model.save` → `pretrained_model.h5`, the same
 *    under `model_weights/`; Keras 3's legacy `.h5` `model.save` too): root attribute `layer_names`, one group
 *    per layer with attribute `weight_names` (empty — a zero-length float64 array as h5py stores `[]` — on layers
 *    without weights), datasets at `<layer>/<weight name>` such as `conv1/conv/conv1/conv/kernel:0`;
 *  - Keras 3 (`.weights.h5`, and `model.weights.h5` inside a `.keras` archive): `layers/<path>/vars/0..n`, the
 *    layer's own name in the `name` attribute of `vars` where Keras wrote it (else taken from its position).
 * Tensors come back named by DenseNet121 layer + parameter in Keras layouts; `mapDenseNet121` checks them.
 */
export interface KerasWeightsFile {
  layout: "Keras 2 HDF5" | "Keras 3 HDF5";
  /** weights: `save_weights`; full-model: `model.save` (architecture + weights). */
  form: "weights" | "full-model";
  kerasVersion?: string;
  backend?: string;
  tensors: SourceTensor[];
}

type H5Group = InstanceType<typeof h5wasm.Group>;
type H5Dataset = InstanceType<typeof h5wasm.Dataset>;

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The end-of-file address the HDF5 superblock records (superblock versions 0-3 at offset 0, as h5py writes), so
 * that a truncated file is named as such before the HDF5 library is asked (it only says "name not defined").
 */
function storedEndOfFile(head: Buffer): number | undefined {
  if (head.length < 48 || !head.subarray(0, 8).equals(HDF5_SIGNATURE)) return undefined;
  const version = head[8]!;
  const offsetSize = version <= 1 ? head[13]! : head[9]!;
  if (offsetSize !== 8) return undefined;
  // v0: 24 fixed bytes then base, free-space, EOF addresses; v1 adds 4 bytes; v2/3: 12 bytes then base, extension, EOF.
  const at = version === 0 ? 24 + 16 : version === 1 ? 28 + 16 : 12 + 16;
  return head.length >= at + 8 ? Number(head.readBigUInt64LE(at)) : undefined;
}

function checkNotTruncated(path: string): void {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(64);
    const n = readSync(fd, head, 0, 64, 0);
    const eof = storedEndOfFile(head.subarray(0, n));
    const size = fstatSync(fd).size;
    if (eof !== undefined && size < eof) throw new Error(`${path}: truncated HDF5 file — it is ${size} bytes, its superblock says ${eof}`);
  } finally {
    closeSync(fd);
  }
}

/** A string-list attribute; Keras splits ones over 64 KiB into `name0`, `name1`, ... (save_attributes_to_hdf5_group). */
function stringListAttr(g: H5Group, name: string, where: string): string[] | undefined {
  const one = (n: string): string[] => {
    const v = g.attrs[n]!.value;
    // h5py stores Keras 2's `attrs["weight_names"] = []` as a zero-length float64 array.
    if (ArrayBuffer.isView(v) && !(v instanceof Uint8Array)) {
      if ((v as unknown as ArrayLike<number>).length === 0) return [];
      throw new Error(`${where}: attribute ${n} holds numbers, not names`);
    }
    const list = Array.isArray(v) ? v : [v];
    return list.map((s) => (s instanceof Uint8Array ? new TextDecoder().decode(s) : String(s))).filter((s) => s !== "");
  };
  if (name in g.attrs) return one(name);
  if (!(`${name}0` in g.attrs)) return undefined;
  const out: string[] = [];
  for (let i = 0; `${name}${i}` in g.attrs; i++) out.push(...one(`${name}${i}`));
  return out;
}

function stringAttr(g: H5Group, name: string): string | undefined {
  if (!(name in g.attrs)) return undefined;
  const v = g.attrs[name]!.value;
  return v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v);
}

function floats(ds: H5Dataset, where: string): Float32Array {
  const v = ds.value;
  if (v instanceof Float32Array) return v;
  if (v instanceof Float64Array) return Float32Array.from(v);
  throw new Error(`${where}: dataset is not float32/float64 (dtype ${JSON.stringify(ds.dtype)})`);
}

/**
 * `conv1/conv/kernel:0` under layer group `conv1/conv` (or `densenet121/conv1/conv/kernel:0` nested): layer + param.
 * A bare `kernel` (a weight name without its layer) belongs to the group it is listed in.
 */
function splitKerasWeightName(name: string, group: string): { layer: string; param: string } {
  const parts = name.replace(/:\d+$/, "").split("/");
  const param = parts.pop()!;
  if (parts.length === 0) parts.push(...group.split("/"));
  // The innermost layer: the longest tail that is a DenseNet layer name, else the last component (a head's name).
  for (let i = 0; i < parts.length; i++) {
    const layer = canonicalLayerName(parts.slice(i).join("/"));
    if (/^(conv1\/(conv|bn)|conv\d_block\d+_\d_(conv|bn)|pool\d_(conv|bn)|bn)$/.test(layer)) return { layer, param };
  }
  return { layer: canonicalLayerName(parts[parts.length - 1] ?? ""), param };
}

function readKeras2(path: string, root: H5Group, prefix: string): SourceTensor[] {
  const layerNames = stringListAttr(root, "layer_names", `${path}: ${prefix}`)!;
  const tensors: SourceTensor[] = [];
  for (const layer of layerNames) {
    const lg = root.get(layer);
    if (!(lg instanceof h5wasm.Group)) throw new Error(`${path}: layer "${layer}" is listed in layer_names but has no group`);
    for (const wn of stringListAttr(lg, "weight_names", `${path}: ${prefix}${layer}`) ?? []) {
      const ds = lg.get(wn);
      const where = `${path}: ${prefix}${layer}/${wn}`;
      if (!(ds instanceof h5wasm.Dataset)) throw new Error(`${where}: listed in weight_names but missing`);
      tensors.push({ ...splitKerasWeightName(wn, layer), shape: ds.shape ?? [], data: floats(ds, where), where });
    }
  }
  return tensors;
}

/** Keras 3 names a layer's variables by position; the parameter names follow the layer's class. */
const KERAS3_PARAMS: Record<string, string[]> = {
  conv2d: ["kernel", "bias"],
  batch_normalization: ["gamma", "beta", "moving_mean", "moving_variance"],
  dense: ["kernel", "bias"],
};

interface Keras3Layer { key: string; cls: string; index: number; name?: string; vars: H5Group; where: string }

/** Every layer with variables under `layers/`, descending into nested models (`layers/functional/layers/...`). */
function keras3Layers(path: string, layers: H5Group, prefix: string): Keras3Layer[] {
  const out: Keras3Layer[] = [];
  for (const key of layers.keys()) {
    const g = layers.get(key);
    if (!(g instanceof h5wasm.Group)) continue;
    const vars = g.keys().includes("vars") ? g.get("vars") : undefined;
    if (vars instanceof h5wasm.Group && vars.keys().length > 0) {
      const m = /^(.*?)(?:_(\d+))?$/.exec(key)!;
      out.push({ key, cls: m[1]!, index: Number(m[2] ?? 0), name: stringAttr(vars, "name"), vars, where: `${path}: ${prefix}${key}/vars` });
    }
    const inner = g.keys().includes("layers") ? g.get("layers") : undefined;
    if (inner instanceof h5wasm.Group) out.push(...keras3Layers(path, inner, `${prefix}${key}/layers/`));
  }
  return out;
}

/**
 * Names for Keras 3 layers whose `vars` carry no `name` (files from Keras versions that did not write it): Keras
 * numbers each class's layers in model order (`conv2d`, `conv2d_1`, ...), which for DenseNet121 is the order of
 * denseNet121Layers. A file of another depth has another count, which is said as such.
 */
function positionalNames(path: string, layers: Keras3Layer[]): void {
  const trunk = denseNet121Layers(0);
  for (const [cls, kind] of [["conv2d", "conv"], ["batch_normalization", "bn"]] as const) {
    const mine = layers.filter((l) => l.cls === cls && l.name === undefined).sort((a, b) => a.index - b.index);
    if (mine.length === 0) continue;
    const names = trunk.filter((l) => l.kind === kind).map((l) => l.name);
    if (mine.length !== names.length) {
      // A DenseNet-N has N-1 convolutions; name the published ones.
      const other = kind === "conv" && [161, 169, 201, 264].includes(mine.length + 1) ? `: this is a DenseNet${mine.length + 1}` : "";
      throw new Error(`${path}: ${mine.length} ${cls} layers, DenseNet121 has ${names.length}${other || " — not a DenseNet121"}; cxr builds DenseNet121 only`);
    }
    mine.forEach((l, i) => (l.name = names[i]));
  }
  for (const l of layers) l.name ??= l.key;
}

function readKeras3(path: string, layersGroup: H5Group): SourceTensor[] {
  const layers = keras3Layers(path, layersGroup, "layers/");
  positionalNames(path, layers);
  const tensors: SourceTensor[] = [];
  for (const l of layers) {
    const params = KERAS3_PARAMS[l.cls];
    const count = l.vars.keys().length;
    if (!params || count > params.length) throw new Error(`${l.where}: a ${l.cls} layer "${l.name}" with ${count} variables is not part of DenseNet121 + one Dense head`);
    for (let i = 0; i < count; i++) {
      const ds = l.vars.get(String(i));
      const where = `${l.where}/${i}`;
      if (!(ds instanceof h5wasm.Dataset)) throw new Error(`${where}: missing (variables are numbered 0..${count - 1})`);
      tensors.push({ layer: canonicalLayerName(l.name!), param: params[i]!, shape: ds.shape ?? [], data: floats(ds, where), where });
    }
  }
  return tensors;
}

/** Reads any Keras HDF5 weights file; `name` is how messages call it (e.g. `x.keras: model.weights.h5`). */
export async function readKerasHdf5(path: string, name = path): Promise<KerasWeightsFile> {
  checkNotTruncated(path);
  await h5wasm.ready;
  let file: InstanceType<typeof h5wasm.File>;
  try {
    file = new h5wasm.File(path, "r");
  } catch (err) {
    throw new Error(`${name}: the HDF5 library cannot open it — damaged HDF5 file (${(err as Error).message})`);
  }
  try {
    const keys = file.keys();
    const full = keys.includes("model_weights");
    const root = (full ? file.get("model_weights") : file) as H5Group;
    const version = stringAttr(file, "keras_version") ?? stringAttr(root, "keras_version");
    const backend = stringAttr(file, "backend") ?? stringAttr(root, "backend");
    if (stringListAttr(root, "layer_names", name)) {
      return { layout: "Keras 2 HDF5", form: full ? "full-model" : "weights", kerasVersion: version, backend, tensors: readKeras2(name, root, full ? "model_weights/" : "") };
    }
    const layers = keys.includes("layers") ? file.get("layers") : undefined;
    if (layers instanceof h5wasm.Group) return { layout: "Keras 3 HDF5", form: "weights", kerasVersion: version, backend, tensors: readKeras3(name, layers) };
    throw new Error(`${name}: HDF5 without Keras weights — neither a "layer_names" attribute${full ? " in model_weights" : ""} (Keras 2 layout) nor a "layers" group (Keras 3 layout); top-level entries: ${keys.slice(0, 8).join(", ") || "none"}`);
  } finally {
    file.close();
  }
}
