import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { buildDenseNet121Onnx } from "../model/densenet121.ts";
import { loadPresentationImage } from "../image/presentation.ts";
import { toModelTensor, type InputSpec } from "../image/tensor.ts";
import type { EpochRecord } from "./head-trainer.ts";
import { balancingWeights, computeClassFreqs, weightedLoss, weightedLossTensor } from "./loss.ts";
import { meanAuroc } from "../evaluation/report.ts";
import { Progress } from "./progress.ts";
import { seededRandom, shuffled } from "../model/rng.ts";
import { assignParams, forward, fromParams, isLastBlockParam, toParams, type Params, type Start } from "./tf-densenet.ts";
import { BLOCK5_CHANNELS, extractBlock5Inputs } from "./features.ts";
import { useCpuBackend, useWebGpuBackend } from "./tfjs.ts";
import { finishTraining, logRun, prepareTraining, type TrainingRun, type TrainOptions, type TrainReport } from "./train.ts";
import type { ResolvedRow } from "./dataset.ts";

/**
 * The whole DenseNet121 trainable (conv kernels, BN gamma/beta, head) with tfjs autodiff on the
 * WebGPU backend (or CPU, for parity checks at tiny sizes). Images are decoded and preprocessed once
 * (NHWC, the card's normalisation); each step runs forward + backward + Adam on the GPU.
 * After every epoch the current weights are written as <out>/checkpoints/last.onnx (a complete
 * DenseNet121-14 graph); resuming from it is not implemented (the head trainer resumes exactly).
 */
export interface FullTrainOptions extends TrainOptions {
  backend: "webgpu" | "cpu";
  /**
   * "whole": every layer trainable, from the image. "last-block": dense block 5, the final BN and the
   * head trainable; the frozen layers below run once per image in ORT and their output is cached.
   */
  scope?: "whole" | "last-block";
}

export interface FullTrainReport extends Omit<TrainReport, "head" | "featureSeconds" | "featuresComputed"> {
  run: TrainingRun;
  backend: string;
  /** Seconds per training step (forward + backward + update) and images per second over all steps. */
  stepSeconds: number[];
  imagesPerSecond: number;
}

async function tensors(rows: ResolvedRow[], spec: InputSpec): Promise<Float32Array[]> {
  const nhwc: InputSpec = { ...spec, layout: "NHWC" };
  const out: Float32Array[] = [];
  for (const r of rows) out.push(toModelTensor(await loadPresentationImage(r.path), nhwc));
  return out;
}

type Hwc = [number, number, number];

function batchTensor(xs: Float32Array[], idx: number[], [h, w, c]: Hwc): tf.Tensor4D {
  const per = h * w * c;
  const buf = new Float32Array(idx.length * per);
  idx.forEach((i, k) => buf.set(xs[i]!, k * per));
  return tf.tensor4d(buf, [idx.length, h, w, c]);
}

async function predict(params: Params, xs: Float32Array[], shape: Hwc, batch: number, start: Start): Promise<number[][]> {
  const out: number[][] = [];
  for (let s = 0; s < xs.length; s += batch) {
    const idx = Array.from({ length: Math.min(batch, xs.length - s) }, (_, k) => s + k);
    const p = tf.tidy(() => forward(params, batchTensor(xs, idx, shape), start));
    const data = await p.data();
    const k = p.shape[1];
    p.dispose();
    for (let i = 0; i < idx.length; i++) out.push(Array.from(data.subarray(i * k, (i + 1) * k)));
  }
  return out;
}

export async function trainFullNetwork(opts: FullTrainOptions): Promise<FullTrainReport> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const prep = await prepareTraining(opts, log);
  const scope = opts.scope ?? "whole";
  await (opts.backend === "webgpu" ? useWebGpuBackend() : useCpuBackend());
  log(`${scope === "whole" ? "full-network" : "last-dense-block"} training on tfjs backend "${tf.getBackend()}"`);
  const { input, train, valid, test } = prep;
  const size = input.size;
  let trainX: Float32Array[], validX: Float32Array[], testX: Float32Array[];
  let shape: Hwc;
  const start: Start = scope === "whole" ? "image" : "block5";
  if (scope === "whole") {
    [trainX, validX, testX] = [await tensors(train, input), await tensors(valid, input), await tensors(test, input)];
    shape = [size, size, 3];
  } else {
    const cacheDir = resolve(opts.cacheDir ?? ".cache/features");
    const all = [...train, ...valid, ...test];
    const b5 = await extractBlock5Inputs(prep.weights, input, all.map((r) => r.path), { cacheDir, threads: opts.threads, progress: opts.progress });
    if (b5.computed) log(`block 5 inputs: ${b5.computed} computed in ${b5.seconds.toFixed(1)} s, cache ${cacheDir}`);
    trainX = b5.inputs.slice(0, train.length);
    validX = b5.inputs.slice(train.length, train.length + valid.length);
    testX = b5.inputs.slice(train.length + valid.length);
    shape = [b5.grid, b5.grid, BLOCK5_CHANNELS];
  }
  const trainY = train.map((r) => r.labels);
  const validY = valid.map((r) => r.labels);
  const lossWeights = balancingWeights(computeClassFreqs(trainY));
  const params = toParams(prep.weights, scope === "whole" ? () => true : isLastBlockParam);
  const trainable = [...params.values()].filter((v) => v.trainable);
  const optimizer = tf.train.adam(opts.learningRate ?? 1e-4);
  const batchSize = opts.batchSize ?? 8;
  const patience = opts.patience ?? 5;

  const v0 = await predict(params, validX, shape, batchSize, start);
  const t0 = await predict(params, trainX, shape, batchSize, start);
  const run: TrainingRun = {
    history: [],
    bestEpoch: 0,
    initialValidMeanAuroc: meanAuroc(validY, v0),
    initialTrainLoss: weightedLoss(trainY, t0, lossWeights),
    initialValidLoss: weightedLoss(validY, v0, lossWeights),
    stoppedEarly: false,
  };
  let best = await fromParams(params);
  let bestAuroc = run.initialValidMeanAuroc;
  let sinceBest = 0;
  const stepSeconds: number[] = [];
  const steps = Math.ceil(train.length / batchSize);
  const bar = opts.progress === false ? undefined : new Progress(`train (${tf.getBackend()})`, opts.epochs * steps);
  for (let epoch = 1; epoch <= opts.epochs; epoch++) {
    if (sinceBest >= patience) {
      run.stoppedEarly = true;
      break;
    }
    const started = performance.now();
    const order = shuffled(
      Array.from({ length: train.length }, (_, i) => i),
      seededRandom(opts.seed * 100003 + epoch),
    );
    let lossSum = 0;
    for (let s = 0; s < order.length; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const ts = performance.now();
      const x = batchTensor(trainX, idx, shape);
      const y = tf.tensor2d(idx.map((i) => trainY[i]!));
      const loss = optimizer.minimize(() => weightedLossTensor(y, forward(params, x, start), lossWeights), true, trainable)!;
      lossSum += (await loss.data())[0]! * idx.length; // reading the loss waits for the GPU: the step is complete
      stepSeconds.push((performance.now() - ts) / 1000);
      tf.dispose([x, y, loss]);
      bar?.tick(1, `loss ${(lossSum / Math.min(order.length, s + batchSize)).toFixed(4)}`);
    }
    const vp = await predict(params, validX, shape, batchSize, start);
    const rec: EpochRecord = { epoch, trainLoss: lossSum / train.length, validLoss: weightedLoss(validY, vp, lossWeights), validMeanAuroc: meanAuroc(validY, vp), seconds: (performance.now() - started) / 1000 };
    run.history.push(rec);
    const current = await fromParams(params);
    mkdirSync(join(opts.out, "checkpoints"), { recursive: true });
    writeFileSync(join(opts.out, "checkpoints", "last.onnx"), buildDenseNet121Onnx({ inputSize: size, weights: current }));
    if (rec.validMeanAuroc > bestAuroc) {
      bestAuroc = rec.validMeanAuroc;
      best = current;
      run.bestEpoch = epoch;
      sinceBest = 0;
    } else sinceBest++;
  }
  bar?.done();
  logRun(log, scope === "whole" ? "whole network" : "last dense block", run);
  // Probabilities of the kept weights, for the operating points and the test metrics.
  assignParams(params, best);
  const validProbs = await predict(params, validX, shape, batchSize, start);
  const testProbs = await predict(params, testX, shape, batchSize, start);
  const done = finishTraining(opts, prep, {
    weights: best,
    validProbs,
    testProbs,
    run,
    method:
      scope === "whole"
        ? `whole network trained (tfjs ${tf.getBackend()} backend; BatchNormalization in inference mode, gamma/beta trained)`
        : `fine-tuning of dense block 5 + final BN + head (tfjs ${tf.getBackend()} backend) on cached outputs of the frozen layers below; BatchNormalization in inference mode`,
    lossWeights,
    lastDenseBlockTrained: true,
    wholeNetworkTrained: scope === "whole",
  });
  optimizer.dispose();
  for (const v of params.values()) v.dispose();
  const total = stepSeconds.reduce((a, b) => a + b, 0);
  return {
    outDir: opts.out,
    card: done.card,
    input,
    counts: prep.counts,
    skipped: prep.skipped,
    leakage: prep.leakage,
    run,
    valid: done.valid,
    test: done.test,
    backend: tf.getBackend(),
    stepSeconds,
    imagesPerSecond: total > 0 ? (train.length * run.history.length) / total : 0,
  };
}
