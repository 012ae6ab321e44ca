import { mkdirSync, readFileSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { buildModelCard, checkWeightsMatchCard, CARD_FILE, defaultCardLabels, MODEL_FILE, writeModelCard, type CardFields, type CardInputSpec, type ModelCard } from "./card.ts";
import { buildDenseNet121Model, FEATURES_OUTPUT, PROBABILITIES_OUTPUT, randomDenseNet121Weights, type BuildOptions } from "./densenet121.ts";
import { NIH_LABELS } from "./labels.ts";
import { decodeModel, encodeModel, readInitializers, type IModelProto, type ModelProto, type WeightMap } from "./onnx-builder.ts";

export const DENSENET121_ARCHITECTURE = "DenseNet121 + GAP + Dense(14, sigmoid)";

/**
 * Keras `densenet.preprocess_input` ("torch" mode: x/255, ImageNet mean/std) written in 8-bit pixel units:
 * what the ImageNet trunk (`densenet.hdf5`) was trained with. The seed notebook normalised each image by
 * its own mean/std instead (ImageDataGenerator samplewise_*), which a fixed InputSpec cannot express; a
 * card for such weights should state the statistics of the training set instead.
 */
export function imagenetInput(size: number): CardInputSpec {
  return { size, layout: "NCHW", pixelScale: 255, mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };
}

/** Writes `<dir>/model.onnx` then `<dir>/model-card.json` (each via a temporary file + rename). */
export function saveModelDir(dir: string, model: IModelProto, fields: CardFields): ModelCard {
  mkdirSync(dir, { recursive: true });
  const card = buildModelCard(model, fields);
  const tmp = join(dir, `.${MODEL_FILE}.tmp`);
  writeFileSync(tmp, encodeModel(model));
  renameSync(tmp, join(dir, MODEL_FILE));
  writeModelCard(dir, card);
  return card;
}

export function readOnnxModel(path: string): ModelProto {
  return decodeModel(readFileSync(path), path);
}

/** The float weights of an .onnx file by initializer name (for the training engineer: start from, or merge into, a model). */
export function readModelWeights(path: string): WeightMap {
  return readInitializers(readOnnxModel(path), path);
}

/** `<dir>/model.onnx` holds the weights the card names (see checkWeightsMatchCard). */
export function verifyModelWeights(dir: string, card: ModelCard): void {
  const path = join(dir, MODEL_FILE);
  checkWeightsMatchCard(readOnnxModel(path), card, path);
}

export interface InitOptions {
  inputSize: number;
  seed: number;
  out: string;
  now?: Date;
}

/** `cxr model init`: a seeded, randomly initialised DenseNet121-14 with its card. */
export function initModelDir(opts: InitOptions): ModelCard {
  const model = buildDenseNet121Model({ inputSize: opts.inputSize, weights: randomDenseNet121Weights(opts.seed, NIH_LABELS.length) });
  return saveModelDir(opts.out, model, {
    architecture: DENSENET121_ARCHITECTURE,
    labels: defaultCardLabels(NIH_LABELS),
    input: imagenetInput(opts.inputSize),
    outputs: { probabilities: PROBABILITIES_OUTPUT, features: FEATURES_OUTPUT },
    training: { summary: `untrained — random weights (seed ${opts.seed}; Keras default init: glorot_uniform kernels, zero bias, BatchNormalization at identity)` },
    now: opts.now,
  });
}

/**
 * Builds a DenseNet121-14 model folder from a complete weight map (trunk + `predictions/*` head), e.g. after
 * training a tail: the card fields (labels, input, training summary) come from the caller.
 */
export function saveDenseNet121Dir(dir: string, build: BuildOptions, fields: Omit<CardFields, "architecture" | "outputs">): ModelCard {
  const model = buildDenseNet121Model(build);
  return saveModelDir(dir, model, { ...fields, architecture: DENSENET121_ARCHITECTURE, outputs: { probabilities: PROBABILITIES_OUTPUT, features: FEATURES_OUTPUT } });
}

export { CARD_FILE, MODEL_FILE };
