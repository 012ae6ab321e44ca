import { closeSync, existsSync, fstatSync, openSync, readSync } from "node:fs";
import { basename } from "node:path";
import type { CardInputSpec, ModelCard, ModelSource } from "./card.ts";
import { defaultCardLabels } from "./card.ts";
import { buildDenseNet121Model, FEATURES_OUTPUT, HEAD_BIAS, HEAD_KERNEL, PROBABILITIES_OUTPUT, randomDenseNet121Weights } from "./densenet121.ts";
import { mapDenseNet121, type SourceTensor, type TensorLayout } from "./densenet121-weights.ts";
import { readKerasArchive, type KerasArchive } from "./keras-archive.ts";
import { readKerasHdf5 } from "./keras-h5.ts";
import { NIH_LABELS } from "./labels.ts";
import { DENSENET121_ARCHITECTURE, imagenetInput, saveModelDir } from "./model-dir.ts";
import { CHEXNET_LABELS, importOnnxClassifier, type LabelsMap } from "./onnx-import.ts";
import { looksLikeSafetensors, readSafetensors } from "./safetensors.ts";
import type { WeightMap } from "./onnx-builder.ts";

export interface ImportOptions {
  out: string;
  /** Square input size; by default the file's own (ONNX with a fixed input, a .keras InputLayer), else 224. */
  inputSize?: number;
  /** Trunk-only weights: seed of the head's random init. */
  seed?: number;
  /** The head's output order (default: the seed's 14 NIH labels for Keras files, CheXNet's order for PyTorch). */
  labels?: string[];
  /** ONNX: which output slot is which label, plus input conventions (see onnx-import.ts). */
  labelsMap?: LabelsMap;
  /** Overrides of the preprocessing stated in the card. */
  input?: Partial<Pick<CardInputSpec, "pixelScale" | "mean" | "std">>;
  name?: string;
  version?: string;
}

export type ModelFileKind = "hdf5" | "zip" | "safetensors" | "onnx";

const TRIED = "Keras HDF5 (.h5, .hdf5, .weights.h5), Keras .keras (zip), PyTorch safetensors, ONNX";
const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** What the first bytes of an unrecognised file look like, for the error. */
function describeHead(head: Buffer, size: number): string {
  if (size === 0) return "an empty file";
  if (head.subarray(0, 2).toString("latin1") === "\x80\x02" || head[0] === 0x80) return "a Python pickle (torch.save's legacy format?) — cxr does not unpickle; save the state dict with safetensors.torch.save_file";
  const text = head.subarray(0, 16).toString("latin1");
  const printable = /^[\x20-\x7e\r\n\t]+$/.test(text);
  return `${size} bytes starting with ${[...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ")}${printable ? ` ("${text.replace(/[\r\n\t]/g, " ")}")` : ""}`;
}

/** The file's format by its content (the extension is not trusted: `.h5` is used for both Keras layouts). */
export function modelFileKind(file: string): ModelFileKind {
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(16);
    const n = readSync(fd, head, 0, 16, 0);
    const size = fstatSync(fd).size;
    const h = head.subarray(0, n);
    if (h.subarray(0, 8).equals(HDF5_SIGNATURE)) return "hdf5";
    if (h.subarray(0, 4).equals(Buffer.from("PK\x03\x04", "latin1"))) return "zip";
    if (looksLikeSafetensors(h, size)) return "safetensors";
    // An ONNX ModelProto starts with its ir_version (field 1, varint: tag byte 0x08).
    if (h[0] === 0x08) return "onnx";
    throw new Error(`${file}: not a model file cxr can import — tried ${TRIED}; found ${describeHead(h, size)}`);
  } finally {
    closeSync(fd);
  }
}

/** The DenseNet121 tensors of a Keras or PyTorch file, with what the card should say about the file. */
interface DenseNetFile {
  tensors: SourceTensor[];
  layout: TensorLayout;
  source: Omit<ModelSource, "head">;
  defaultLabels: readonly string[];
  inputSize?: number;
  headActivation?: string;
}

async function readDenseNetFile(file: string, kind: Exclude<ModelFileKind, "onnx">): Promise<DenseNetFile> {
  const name = basename(file);
  if (kind === "safetensors") {
    const st = readSafetensors(file);
    const writer = Object.entries(st.metadata).map(([k, v]) => `${k}=${v}`).join(", ");
    return { tensors: st.tensors, layout: "torch", source: { file: name, format: "PyTorch state dict (safetensors, torchvision DenseNet names)", contents: "weights only", ...(writer && { writer: `safetensors metadata: ${writer}` }) }, defaultLabels: CHEXNET_LABELS };
  }
  const k: KerasArchive = kind === "zip" ? await readKerasArchive(file) : await readKerasHdf5(file);
  const writer = k.kerasVersion ? `Keras ${k.kerasVersion}${k.backend ? ` (${k.backend})` : ""}` : undefined;
  const format = kind === "zip" ? `Keras .keras archive (${k.layout} weights)` : k.layout;
  return {
    tensors: k.tensors,
    layout: "keras",
    source: { file: name, format, contents: k.form === "full-model" ? "full model" : "weights only", ...(writer && { writer }) },
    defaultLabels: NIH_LABELS,
    inputSize: k.inputSize,
    headActivation: k.headActivation,
  };
}

/** A trunk-only import gets Keras's default init for the head (seeded), so the graph is complete. */
function withRandomHead(weights: WeightMap, seed: number, classes: number): WeightMap {
  const head = randomDenseNet121Weights(seed, classes);
  return new Map([...weights, [HEAD_KERNEL, head.get(HEAD_KERNEL)!], [HEAD_BIAS, head.get(HEAD_BIAS)!]]);
}

/** `cxr model import`: Keras (2 or 3, weights or full model), a PyTorch safetensors state dict, or an ONNX classifier. */
export async function importModel(file: string, opts: ImportOptions): Promise<ModelCard> {
  if (!existsSync(file)) throw new Error(`${file}: no such file`);
  const kind = modelFileKind(file);
  if (kind === "onnx") return importOnnxClassifier(file, opts);
  if (opts.labelsMap) throw new Error(`${file}: --labels-map applies to ONNX imports; the outputs of a Keras or PyTorch DenseNet121 head are given with --labels`);
  const f = await readDenseNetFile(file, kind);
  const mapped = mapDenseNet121(file, f.tensors, f.layout);
  const labels = opts.labels ?? [...f.defaultLabels];
  const seed = opts.seed ?? 0;
  if (mapped.head && mapped.head.units !== labels.length) {
    throw new Error(`${file}: the Dense head "${mapped.head.layer}" has ${mapped.head.units} outputs but ${labels.length} labels ${opts.labels ? "were given (--labels)" : `are the default (${labels.join(", ")}); give the head's labels in order with --labels`}`);
  }
  if (f.headActivation !== undefined && f.headActivation !== "sigmoid") throw new Error(`${file}: the Dense head's activation is "${f.headActivation}"; cxr's graph ends in a sigmoid per label (multi-label, as the seed's Dense(14, activation="sigmoid"))`);
  const headText = mapped.head ? `Dense "${mapped.head.layer}" (${mapped.head.units} outputs, sigmoid) from the file` : `random (seed ${seed}, Keras default init) — not trained for these findings`;
  const source: ModelSource = { ...f.source, head: headText };
  const size = opts.inputSize ?? f.inputSize ?? 224;
  const model = buildDenseNet121Model({ inputSize: size, weights: mapped.head ? mapped.weights : withRandomHead(mapped.weights, seed, labels.length), classes: labels.length });
  return saveModelDir(opts.out, model, {
    name: opts.name ?? `DenseNet121-${labels.length} (${source.file})`,
    version: opts.version,
    architecture: DENSENET121_ARCHITECTURE,
    labels: defaultCardLabels(labels),
    input: { ...imagenetInput(size), ...opts.input },
    outputs: { probabilities: PROBABILITIES_OUTPUT, features: FEATURES_OUTPUT },
    training: { summary: `imported from ${source.file} (${source.format}, ${source.contents}${source.writer ? `, ${source.writer}` : ""}); head: ${headText}` },
    source,
  });
}
