import { closeSync, openSync, readSync, existsSync } from "node:fs";
import { basename } from "node:path";
import type { CardInputSpec, ModelCard } from "./card.ts";
import { defaultCardLabels } from "./card.ts";
import { buildDenseNet121Model, FEATURES_OUTPUT, PROBABILITIES_OUTPUT } from "./densenet121.ts";
import { describeKerasImport, readKerasDenseNet121H5, withRandomHead } from "./keras-h5.ts";
import { NIH_LABELS } from "./labels.ts";
import { DENSENET121_ARCHITECTURE, imagenetInput, saveModelDir } from "./model-dir.ts";
import { importOnnxClassifier, type LabelsMap } from "./onnx-import.ts";

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

export function isHdf5(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(8);
    return readSync(fd, head, 0, 8, 0) === 8 && head.equals(HDF5_SIGNATURE);
  } finally {
    closeSync(fd);
  }
}

export interface ImportOptions {
  out: string;
  /** Square input size; for ONNX the model's own fixed size is used when it has one. */
  inputSize?: number;
  /** Keras trunk-only weights: seed of the head's random init. */
  seed?: number;
  /** Keras: the head's output order (default the 14 NIH labels in the seed's order). */
  labels?: string[];
  /** ONNX: which output slot is which label, plus input conventions (see onnx-import.ts). */
  labelsMap?: LabelsMap;
  /** Overrides of the preprocessing stated in the card. */
  input?: Partial<Pick<CardInputSpec, "pixelScale" | "mean" | "std">>;
  name?: string;
  version?: string;
}

/** `cxr model import`: a Keras HDF5 (weights or full model) or a PyTorch-exported ONNX, into a model folder. */
export async function importModel(file: string, opts: ImportOptions): Promise<ModelCard> {
  if (!existsSync(file)) throw new Error(`${file}: no such file`);
  if (isHdf5(file)) return importKeras(file, opts);
  return importOnnxClassifier(file, opts);
}

async function importKeras(file: string, opts: ImportOptions): Promise<ModelCard> {
  if (opts.labelsMap) throw new Error(`${file}: --labels-map applies to ONNX imports; a Keras head's outputs are given with --labels`);
  const imp = await readKerasDenseNet121H5(file);
  const labels = opts.labels ?? [...NIH_LABELS];
  const seed = opts.seed ?? 0;
  if (imp.headUnits !== undefined && imp.headUnits !== labels.length) {
    throw new Error(`${file}: the Dense head "${imp.headLayer}" has ${imp.headUnits} outputs but ${labels.length} labels were given (--labels)`);
  }
  const weights = imp.headLayer ? imp.weights : withRandomHead(imp.weights, seed, labels.length);
  const size = opts.inputSize ?? 224;
  const model = buildDenseNet121Model({ inputSize: size, weights, classes: labels.length });
  return saveModelDir(opts.out, model, {
    name: opts.name ?? `DenseNet121-${labels.length} (${basename(file)})`,
    version: opts.version,
    architecture: DENSENET121_ARCHITECTURE,
    labels: defaultCardLabels(labels),
    input: { ...imagenetInput(size), ...opts.input },
    outputs: { probabilities: PROBABILITIES_OUTPUT, features: FEATURES_OUTPUT },
    training: { summary: describeKerasImport(file, imp, seed) },
  });
}
