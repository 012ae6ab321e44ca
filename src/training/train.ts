import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { youdenThreshold } from "../evaluation/auroc.ts";
import { computeMetrics, type EvaluationMetrics } from "../evaluation/report.ts";
import type { InputSpec } from "../image/tensor.ts";
import { checkWeightsMatchCard, defaultCardLabels, MODEL_FILE, readModelCard, type ModelCard } from "../model/card.ts";
import type { WeightMap } from "../model/densenet121.ts";
import { readOnnxModel, saveDenseNet121Dir } from "../model/model-dir.ts";
import { readInitializers } from "../model/onnx-builder.ts";
import { DEFAULT_AUGMENTATION, type Augmentation } from "./augment.ts";
import { DatasetError, readLabelTable, resolveImages, selectSplit, type LabelTable, type ResolvedRow, type Unresolved } from "./dataset.ts";
import { createTrunk, extractFeatures, type FeatureRequest, type Trunk } from "./features.ts";
import { predictHead, trainHead, type EpochRecord, type HeadTrainingResult } from "./head-trainer.ts";
import { headFromWeights, withHead } from "./head-weights.ts";
import { findSplitLeakage, LeakageError, type LeakageFinding } from "./leakage.ts";
import { balancingWeights, computeClassFreqs, type LossWeights } from "./loss.ts";
import { normalizationFromSample } from "./normalization.ts";

export interface TrainOptions {
  labels: string;
  images: string;
  /** Starting model folder (`cxr model init` or an import): its trunk is frozen, its head is the starting point. */
  model: string;
  out: string;
  epochs: number;
  seed: number;
  splits?: { train: string; valid: string; test: string };
  /** Train although splits share patients (recorded in the card and printed loudly). */
  allowLeakage?: boolean;
  /** Model input size; default: the starting model's. */
  inputSize?: number;
  cacheDir?: string;
  batchSize?: number;
  learningRate?: number;
  patience?: number;
  resume?: boolean;
  augmentation?: Augmentation;
  /** Training images sampled for the normalisation statistics (the seed uses 100). */
  normSample?: number;
  bootstrapIterations?: number;
  progress?: boolean;
  threads?: number;
  log?: (line: string) => void;
}

export interface TrainReport {
  outDir: string;
  card: ModelCard;
  input: InputSpec;
  counts: Record<string, number>;
  skipped: Unresolved[];
  leakage: LeakageFinding[];
  head: HeadTrainingResult;
  valid: EvaluationMetrics;
  test: EvaluationMetrics;
  featureSeconds: number;
  featuresComputed: number;
}

const round = (x: number | null, d = 4) => (x === null || Number.isNaN(x) ? null : +x.toFixed(d));

export interface Prepared {
  splits: { train: string; valid: string; test: string };
  start: ModelCard;
  weights: WeightMap;
  labelNames: string[];
  leakage: LeakageFinding[];
  skipped: Unresolved[];
  train: ResolvedRow[];
  valid: ResolvedRow[];
  test: ResolvedRow[];
  counts: Record<string, number>;
  input: InputSpec;
}

/** What every trainer shares: starting model, labels, leakage check, image files, normalisation. */
export async function prepareTraining(opts: TrainOptions, log: (l: string) => void): Promise<Prepared> {
  const splits = opts.splits ?? { train: "train", valid: "valid", test: "test" };
  const start = readModelCard(opts.model);
  // The trained card records the starting model's identity: its weights must be the ones its card names.
  const startPath = join(opts.model, MODEL_FILE);
  const startModel = readOnnxModel(startPath);
  checkWeightsMatchCard(startModel, start, startPath);
  const weights = readInitializers(startModel, startPath);
  const labelNames = start.labels.map((l) => l.name);
  const table: LabelTable = readLabelTable(opts.labels, labelNames);
  if (!table.hasSplit) throw new DatasetError(`${opts.labels}: no Split column — make a patient-level split first (cxr split)`);

  const leakage = findSplitLeakage(table.rows.filter((r) => Object.values(splits).includes(r.split ?? "")));
  if (leakage.length) {
    const err = new LeakageError(leakage);
    if (!opts.allowLeakage) throw err;
    log(`\n!!! WARNING: ${err.message.replace(/ — fix.*$/, "")}\n!!! --allow-leakage given: training anyway; validation/test numbers are optimistic and the card says so.\n`);
  }

  const skipped: Unresolved[] = [];
  const part = (name: string): ResolvedRow[] => {
    const rows = selectSplit(table, name);
    if (rows.length === 0) throw new DatasetError(`${opts.labels}: no rows with Split = ${name}`);
    const { resolved, unresolved } = resolveImages(table, rows, opts.images);
    for (const u of unresolved) log(`skipped ${opts.labels}:${u.row.line} (${u.row.key}): ${u.reason}`);
    skipped.push(...unresolved);
    return resolved;
  };
  const train = part(splits.train);
  const valid = part(splits.valid);
  const test = part(splits.test);
  const counts = { [splits.train]: train.length, [splits.valid]: valid.length, [splits.test]: test.length };

  const size = opts.inputSize ?? start.input.size;
  const input = await normalizationFromSample(
    train.map((r) => r.path),
    size,
    { sample: opts.normSample ?? 100, seed: opts.seed, pixelScale: start.input.pixelScale },
  );
  log(`normalisation from ${Math.min(opts.normSample ?? 100, train.length)} training images at ${size}px: mean ${input.mean[0]}, std ${input.std[0]}`);
  return { splits, start, weights, labelNames, leakage, skipped, train, valid, test, counts, input };
}

/** The epochs of a run, whichever trainer ran them. */
export interface TrainingRun {
  history: EpochRecord[];
  bestEpoch: number;
  initialValidMeanAuroc: number;
  initialTrainLoss: number;
  initialValidLoss: number;
  stoppedEarly: boolean;
}

/**
 * Operating points on the validation split (Youden's J), an honest look at the test split, and the
 * export: one merged ONNX + a card with data, splits, metrics with CIs and the new Device UID.
 */
export function finishTraining(
  opts: TrainOptions,
  prep: Prepared,
  result: { weights: WeightMap; validProbs: number[][]; testProbs: number[][]; run: TrainingRun; method: string; lossWeights: LossWeights; augmentation?: Augmentation; lastDenseBlockTrained: boolean; wholeNetworkTrained: boolean },
): { card: ModelCard; valid: EvaluationMetrics; test: EvaluationMetrics } {
  const { splits, start, labelNames, valid, test, counts, skipped, leakage, input } = prep;
  const { run, validProbs, testProbs, lossWeights } = result;
  const thresholds: Record<string, { threshold: number; method: string }> = {};
  labelNames.forEach((name, j) => {
    const t = valid.map((r) => r.labels[j]!);
    if (!t.includes(1) || !t.includes(0)) {
      thresholds[name] = { threshold: 0.5, method: `default 0.5 — ${splits.valid} split has no ${t.includes(1) ? "negatives" : "positives"}` };
      return;
    }
    const y = youdenThreshold(t, validProbs.map((p) => p[j]!));
    thresholds[name] = { threshold: +y.threshold.toFixed(6), method: `Youden's J on ${splits.valid} split (${valid.length} images, J=${y.j.toFixed(3)})` };
  });
  const it = opts.bootstrapIterations ?? 1000;
  const validMetrics = computeMetrics({ labelNames, keys: valid.map((r) => r.key), truth: valid.map((r) => r.labels), probabilities: validProbs }, { iterations: it, seed: opts.seed });
  const testMetrics = computeMetrics({ labelNames, keys: test.map((r) => r.key), truth: test.map((r) => r.labels), probabilities: testProbs }, { iterations: it, seed: opts.seed });

  const compact = (m: EvaluationMetrics) => ({
    mean_auroc: round(m.mean_auroc),
    labels: Object.fromEntries(Object.entries(m.labels).map(([k, v]) => [k, { auroc: round(v.auroc), ci95: v.ci95 && v.ci95.map((x) => round(x)), n_pos: v.n_pos, n_neg: v.n_neg }])),
  });
  const leakNote = leakage.length ? ` WARNING: trained with --allow-leakage although ${leakage.map((l) => `${l.splits.join("/")} share ${l.patients.length} patients`).join(", ")}.` : "";
  const card = saveDenseNet121Dir(
    opts.out,
    { inputSize: input.size, weights: result.weights },
    {
      name: start.name,
      labels: defaultCardLabels(labelNames, thresholds),
      input,
      training: {
        summary: `${result.method}, Adam and the seed's class-balanced weighted loss; started from ${start.name} ${start.version} (${start.training.summary}); best epoch ${run.bestEpoch} of ${run.history.length} by ${splits.valid} mean AUROC; seed ${opts.seed}.${leakNote}`,
        data: `${opts.labels} over ${opts.images}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")} images${skipped.length ? `; ${skipped.length} rows without an image skipped` : ""}; normalisation mean/std from ${Math.min(opts.normSample ?? 100, prep.train.length)} ${splits.train} images`,
        metrics: {
          splits: counts,
          startingModel: { name: start.name, version: start.version, deviceUid: start.deviceUid, weightsSha256: start.weightsSha256 },
          inputSize: input.size,
          epochs: { requested: opts.epochs, run: run.history.length, best: run.bestEpoch, stoppedEarly: run.stoppedEarly },
          ...(result.augmentation ? { augmentation: result.augmentation } : {}),
          lossWeights: { pos: lossWeights.pos.map((x) => round(x)), neg: lossWeights.neg.map((x) => round(x)) },
          untrained: { validMeanAuroc: round(run.initialValidMeanAuroc), trainLoss: round(run.initialTrainLoss), validLoss: round(run.initialValidLoss) },
          history: run.history.map((h) => ({ epoch: h.epoch, trainLoss: round(h.trainLoss), validLoss: round(h.validLoss), validMeanAuroc: round(h.validMeanAuroc) })),
          valid: compact(validMetrics),
          test: compact(testMetrics),
          bootstrap: { iterations: it, seed: opts.seed },
          leakage: leakage.length ? leakage : "none (train/valid/test share no patient)",
          lastDenseBlockTrained: result.lastDenseBlockTrained,
          wholeNetworkTrained: result.wholeNetworkTrained,
        },
      },
    },
  );
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(
    join(opts.out, "training.json"),
    JSON.stringify({ counts, skipped: skipped.map((s) => ({ line: s.row.line, key: s.row.key, reason: s.reason })), run, valid: validMetrics, test: testMetrics }, null, 2) + "\n",
  );
  return { card, valid: validMetrics, test: testMetrics };
}

/** `cxr train`: transfer learning of the classifier head on frozen-trunk features. */
export async function trainModel(opts: TrainOptions): Promise<TrainReport> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const prep = await prepareTraining(opts, log);
  const { weights, labelNames, train, valid, test, splits, input } = prep;

  const augmentation = opts.augmentation ?? DEFAULT_AUGMENTATION;
  const cacheDir = resolve(opts.cacheDir ?? ".cache/features");
  const trunk: Trunk = await createTrunk(weights, input, opts.threads ?? 2);
  let featureSeconds = 0;
  let featuresComputed = 0;
  const features = async (rows: ResolvedRow[], copies: number, label: string) => {
    const out: Float32Array[][] = [];
    for (let copy = 0; copy <= copies; copy++) {
      const reqs: FeatureRequest[] = rows.map((r) => ({ path: r.path, copy }));
      const f = await extractFeatures(trunk, reqs, { cacheDir, augmentation, seed: opts.seed, label: copy ? `${label} copy ${copy}` : label, progress: opts.progress });
      featureSeconds += f.seconds;
      featuresComputed += f.computed;
      out.push(f.features);
    }
    return out;
  };
  let trainX: Float32Array[][], validX: Float32Array[][], testX: Float32Array[][];
  try {
    trainX = await features(train, augmentation.copies, `features ${splits.train}`);
    validX = await features(valid, 0, `features ${splits.valid}`);
    testX = await features(test, 0, `features ${splits.test}`);
  } finally {
    await trunk.close();
  }
  if (featuresComputed) log(`trunk features: ${featuresComputed} computed in ${featureSeconds.toFixed(1)} s (${(featuresComputed / featureSeconds).toFixed(2)} images/s), cache ${cacheDir}`);

  const trainY = train.map((r) => r.labels);
  const lossWeights = balancingWeights(computeClassFreqs(trainY));
  const head = await trainHead(
    headFromWeights(weights, labelNames.length),
    { copies: trainX, labels: trainY },
    { copies: validX, labels: valid.map((r) => r.labels) },
    {
      epochs: opts.epochs,
      seed: opts.seed,
      batchSize: opts.batchSize,
      learningRate: opts.learningRate,
      patience: opts.patience,
      lossWeights,
      checkpointDir: join(opts.out, "checkpoints"),
      resume: opts.resume,
      progress: opts.progress,
    },
  );
  logRun(log, "head", head);
  const done = finishTraining(opts, prep, {
    weights: withHead(weights, head.best),
    validProbs: predictHead(head.best, validX[0]!),
    testProbs: predictHead(head.best, testX[0]!),
    run: head,
    method: `transfer learning: classifier head (GAP → Dense(${labelNames.length}, sigmoid)) trained on frozen trunk features (tfjs cpu)`,
    lossWeights,
    augmentation,
    lastDenseBlockTrained: false,
    wholeNetworkTrained: false,
  });
  return { outDir: opts.out, card: done.card, input, counts: prep.counts, skipped: prep.skipped, leakage: prep.leakage, head, valid: done.valid, test: done.test, featureSeconds, featuresComputed };
}

export function logRun(log: (l: string) => void, what: string, run: TrainingRun): void {
  const last = run.history.at(-1);
  log(
    `${what}: valid mean AUROC ${run.initialValidMeanAuroc.toFixed(4)} (untrained) → ${Math.max(run.initialValidMeanAuroc, ...run.history.map((h) => h.validMeanAuroc)).toFixed(4)} (best, epoch ${run.bestEpoch}); train loss ${run.initialTrainLoss.toFixed(4)} → ${last?.trainLoss.toFixed(4) ?? "n/a"}`,
  );
}
