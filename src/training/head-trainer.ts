import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { meanAuroc } from "../evaluation/report.ts";
import { weightedLoss, weightedLossTensor, type LossWeights } from "./loss.ts";
import { Progress } from "./progress.ts";
import { seededRandom, shuffled } from "../model/rng.ts";
import { useCpuBackend } from "./tfjs.ts";

/**
 * Trains the classifier head — GAP features (1024) → Dense(k) → sigmoid — on cached trunk features
 * with tfjs autodiff, Adam and the seed's weighted loss. Early stopping keeps the weights of the
 * epoch with the best validation mean AUROC. Every epoch writes a checkpoint (weights, Adam state,
 * history) so an interrupted run resumes where it stopped with the same result as an uninterrupted one.
 */
export interface HeadWeights {
  /** Keras Dense layout [in, out], row-major (= the ONNX Gemm B of `predictions/kernel`). */
  kernel: Float32Array;
  bias: Float32Array;
  inputs: number;
  outputs: number;
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  validLoss: number;
  validMeanAuroc: number;
  seconds: number;
}

export interface HeadTrainingResult {
  best: HeadWeights;
  bestEpoch: number;
  initialValidMeanAuroc: number;
  initialTrainLoss: number;
  initialValidLoss: number;
  history: EpochRecord[];
  stoppedEarly: boolean;
  resumedFrom?: number;
}

export interface HeadTrainingOptions {
  epochs: number;
  seed: number;
  batchSize?: number;
  learningRate?: number;
  /** Epochs without a better validation mean AUROC before stopping. */
  patience?: number;
  lossWeights: LossWeights;
  checkpointDir?: string;
  resume?: boolean;
  progress?: boolean;
}

export interface FeatureSet {
  /** Per augmented copy (copy 0 = original images), one feature row per image. Epoch e uses copy e mod copies. */
  copies: Float32Array[][];
  labels: number[][];
}

const CHECKPOINT = "checkpoint.json";

interface Checkpoint {
  epoch: number;
  seed: number;
  current: { kernel: number[]; bias: number[] };
  best: { kernel: number[]; bias: number[] };
  bestEpoch: number;
  bestAuroc: number;
  sinceBest: number;
  initial: { validMeanAuroc: number; trainLoss: number; validLoss: number };
  history: EpochRecord[];
  optimizer: { name: string; shape: number[]; values: number[] }[];
  /** Adam's running beta1^t and beta2^t (see restoreAdamPowers). */
  adamPowers: [number, number];
}

/**
 * Adam.setWeights recomputes beta^t as pow(beta, t+1), while training accumulates it by repeated
 * float32 multiplication; the two differ in the last bits, and a resumed run would drift from an
 * uninterrupted one. The checkpoint keeps the accumulated values and puts them back.
 */
interface AdamPowers {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}
function adamPowers(o: tf.AdamOptimizer): AdamPowers {
  const p = o as unknown as Partial<AdamPowers>;
  if (!p.accBeta1 || !p.accBeta2) throw new Error("tfjs AdamOptimizer has no accBeta1/accBeta2 (tfjs version changed?)");
  return p as AdamPowers;
}

export function predictHead(w: HeadWeights, rows: Float32Array[]): number[][] {
  return rows.map((x) => {
    const out: number[] = [];
    for (let j = 0; j < w.outputs; j++) {
      let z = w.bias[j]!;
      for (let i = 0; i < w.inputs; i++) z += x[i]! * w.kernel[i * w.outputs + j]!;
      out.push(1 / (1 + Math.exp(-z)));
    }
    return out;
  });
}

function stack(rows: Float32Array[], cols: number): tf.Tensor2D {
  const buf = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => buf.set(r, i * cols));
  return tf.tensor2d(buf, [rows.length, cols]);
}

/**
 * Per-feature mean and standard deviation over the training rows. Features of a randomly initialised
 * trunk are tiny and nearly collinear; Adam on standardised inputs converges far faster. The
 * standardisation is folded back into the Dense weights afterwards (W = W'/s, b = b' - sum(m W)), so
 * the exported graph stays GAP → Dense on raw features and the result is exact.
 */
export interface FeatureScaling {
  mean: Float32Array;
  std: Float32Array;
}

export function featureScaling(rows: Float32Array[]): FeatureScaling {
  const c = rows[0]!.length;
  const mean = new Float32Array(c);
  const std = new Float32Array(c);
  for (const r of rows) for (let i = 0; i < c; i++) mean[i]! += r[i]! / rows.length;
  for (const r of rows) for (let i = 0; i < c; i++) std[i]! += (r[i]! - mean[i]!) ** 2 / rows.length;
  for (let i = 0; i < c; i++) std[i] = Math.sqrt(std[i]!) || 1;
  return { mean, std };
}

function toScaled(w: HeadWeights, s: FeatureScaling): HeadWeights {
  const kernel = new Float32Array(w.kernel.length);
  const bias = Float32Array.from(w.bias);
  for (let i = 0; i < w.inputs; i++)
    for (let j = 0; j < w.outputs; j++) {
      const k = w.kernel[i * w.outputs + j]!;
      kernel[i * w.outputs + j] = k * s.std[i]!;
      bias[j]! += s.mean[i]! * k;
    }
  return { ...w, kernel, bias };
}

function fromScaled(w: HeadWeights, s: FeatureScaling): HeadWeights {
  const kernel = new Float32Array(w.kernel.length);
  const bias = Float64Array.from(w.bias);
  for (let i = 0; i < w.inputs; i++)
    for (let j = 0; j < w.outputs; j++) {
      const k = w.kernel[i * w.outputs + j]! / s.std[i]!;
      kernel[i * w.outputs + j] = k;
      bias[j]! -= s.mean[i]! * k;
    }
  return { ...w, kernel, bias: Float32Array.from(bias) };
}

function scaleRows(rows: Float32Array[], s: FeatureScaling): Float32Array[] {
  return rows.map((r) => r.map((v, i) => (v - s.mean[i]!) / s.std[i]!));
}

/** Trains on standardised features and returns weights for raw features (see FeatureScaling). */
export async function trainHead(init: HeadWeights, train: FeatureSet, valid: FeatureSet, opts: HeadTrainingOptions): Promise<HeadTrainingResult> {
  const scaling = featureScaling(train.copies[0]!);
  const r = await trainScaledHead(
    toScaled(init, scaling),
    { copies: train.copies.map((c) => scaleRows(c, scaling)), labels: train.labels },
    { copies: valid.copies.map((c) => scaleRows(c, scaling)), labels: valid.labels },
    opts,
  );
  return { ...r, best: fromScaled(r.best, scaling) };
}

async function trainScaledHead(init: HeadWeights, train: FeatureSet, valid: FeatureSet, opts: HeadTrainingOptions): Promise<HeadTrainingResult> {
  await useCpuBackend();
  const { epochs, seed, batchSize = 32, learningRate = 1e-3, patience = 5, lossWeights } = opts;
  const { inputs, outputs } = init;
  const kernel = tf.variable(tf.tensor2d(init.kernel, [inputs, outputs]), true, "kernel");
  const bias = tf.variable(tf.tensor1d(init.bias), true, "bias");
  const optimizer = tf.train.adam(learningRate);
  const snapshot = (): HeadWeights => ({ kernel: kernel.dataSync().slice() as Float32Array, bias: bias.dataSync().slice() as Float32Array, inputs, outputs });
  const nTrain = train.labels.length;
  const validX = valid.copies[0]!;

  const evaluate = (w: HeadWeights, rows: Float32Array[], labels: number[][]) => {
    const p = predictHead(w, rows);
    return { loss: weightedLoss(labels, p, lossWeights), meanAuroc: meanAuroc(labels, p) };
  };

  let start = 1;
  let best = snapshot();
  let bestEpoch = 0;
  let sinceBest = 0;
  let history: EpochRecord[] = [];
  const v0 = evaluate(best, validX, valid.labels);
  let initial = { validMeanAuroc: v0.meanAuroc, trainLoss: evaluate(best, train.copies[0]!, train.labels).loss, validLoss: v0.loss };
  let bestAuroc = initial.validMeanAuroc;
  let resumedFrom: number | undefined;

  const ckptPath = opts.checkpointDir ? join(opts.checkpointDir, CHECKPOINT) : undefined;
  if (opts.resume && ckptPath && existsSync(ckptPath)) {
    let c: Checkpoint;
    try {
      c = JSON.parse(readFileSync(ckptPath, "utf8")) as Checkpoint;
    } catch (err) {
      throw new Error(`${ckptPath}: cannot read the checkpoint (${(err as Error).message}); remove it or run without --resume`);
    }
    if (c.current?.kernel?.length !== inputs * outputs || c.current.bias?.length !== outputs) throw new Error(`${ckptPath}: checkpoint head is not ${inputs}x${outputs} (written for another model?)`);
    if (c.seed !== seed) throw new Error(`${ckptPath}: checkpoint was written with seed ${c.seed}, this run has seed ${seed}`);
    kernel.assign(tf.tensor2d(Float32Array.from(c.current.kernel), [inputs, outputs]));
    bias.assign(tf.tensor1d(Float32Array.from(c.current.bias)));
    best = { kernel: Float32Array.from(c.best.kernel), bias: Float32Array.from(c.best.bias), inputs, outputs };
    bestEpoch = c.bestEpoch;
    bestAuroc = c.bestAuroc;
    sinceBest = c.sinceBest;
    history = c.history;
    initial = c.initial;
    await optimizer.setWeights(c.optimizer.map((o) => ({ name: o.name, tensor: tf.tensor(Float32Array.from(o.values), o.shape) })));
    adamPowers(optimizer).accBeta1.assign(tf.scalar(c.adamPowers[0]));
    adamPowers(optimizer).accBeta2.assign(tf.scalar(c.adamPowers[1]));
    start = c.epoch + 1;
    resumedFrom = c.epoch;
  }

  let stoppedEarly = false;
  const bar = opts.progress === false ? undefined : new Progress("train head", Math.max(0, epochs - start + 1));
  for (let epoch = start; epoch <= epochs; epoch++) {
    if (sinceBest >= patience) {
      stoppedEarly = true;
      break;
    }
    const t0 = performance.now();
    const rows = train.copies[(epoch - 1) % train.copies.length]!;
    // The shuffle depends only on (seed, epoch), so a resumed run sees the same batches.
    const order = shuffled(
      Array.from({ length: nTrain }, (_, i) => i),
      seededRandom(seed * 100003 + epoch),
    );
    let lossSum = 0;
    for (let s = 0; s < nTrain; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const x = stack(
        idx.map((i) => rows[i]!),
        inputs,
      );
      const y = tf.tensor2d(idx.map((i) => train.labels[i]!));
      const loss = optimizer.minimize(() => weightedLossTensor(y, tf.sigmoid(tf.add(tf.matMul(x, kernel), bias)) as tf.Tensor2D, lossWeights), true, [kernel, bias]);
      lossSum += (await loss!.data())[0]! * idx.length;
      tf.dispose([x, y, loss!]);
    }
    const current = snapshot();
    const v = evaluate(current, validX, valid.labels);
    const rec: EpochRecord = { epoch, trainLoss: lossSum / nTrain, validLoss: v.loss, validMeanAuroc: v.meanAuroc, seconds: (performance.now() - t0) / 1000 };
    history.push(rec);
    if (v.meanAuroc > bestAuroc) {
      bestAuroc = v.meanAuroc;
      best = current;
      bestEpoch = epoch;
      sinceBest = 0;
    } else sinceBest++;
    if (opts.checkpointDir) {
      const optWeights = await optimizer.getWeights();
      const c: Checkpoint = {
        epoch,
        seed,
        current: { kernel: Array.from(current.kernel), bias: Array.from(current.bias) },
        best: { kernel: Array.from(best.kernel), bias: Array.from(best.bias) },
        bestEpoch,
        bestAuroc,
        sinceBest,
        initial,
        history,
        optimizer: await Promise.all(optWeights.map(async (o) => ({ name: o.name, shape: o.tensor.shape, values: Array.from(await o.tensor.data()) }))),
        adamPowers: [adamPowers(optimizer).accBeta1.dataSync()[0]!, adamPowers(optimizer).accBeta2.dataSync()[0]!],
      };
      mkdirSync(opts.checkpointDir, { recursive: true });
      writeFileSync(`${ckptPath}.tmp`, JSON.stringify(c));
      renameSync(`${ckptPath}.tmp`, ckptPath!);
    }
    bar?.tick(1, `loss ${rec.trainLoss.toFixed(4)} valid AUROC ${rec.validMeanAuroc.toFixed(4)}`);
  }
  bar?.done();
  tf.dispose([kernel, bias]);
  optimizer.dispose();
  return { best, bestEpoch, initialValidMeanAuroc: initial.validMeanAuroc, initialTrainLoss: initial.trainLoss, initialValidLoss: initial.validLoss, history, stoppedEarly, resumedFrom };
}
