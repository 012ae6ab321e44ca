/**
 * Training and evaluation throughput on the shared NIH set at 224 px (DenseNet121, seeded random trunk):
 *   - trunk feature extraction (decode + preprocess + ORT trunk + GAP + cache write), images/s, against
 *     a bare ORT session.run of the same trunk on the same preprocessed tensors (the peer), as a ratio;
 *   - head-only training: seconds per epoch on the 352 training images (cached features);
 *   - last-dense-block fine-tuning (tfjs cpu): seconds per step of 8, and the epoch time that implies;
 *   - evaluation (`cxr eval` path: decode, preprocess, Classifier) of N images (default all 520), against
 *     bare session.run of the full model on the same tensors for the first images, as a ratio.
 *
 *   npx tsx bench/train.ts [--extract 32] [--epochs 5] [--steps 2] [--eval-images 520] [--cache .cache/features]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { loadPresentationImage } from "../src/image/presentation.ts";
import { toModelTensor } from "../src/image/tensor.ts";
import { Classifier } from "../src/inference/classifier.ts";
import { buildDenseNet121Onnx, randomDenseNet121Weights, INPUT_NAME } from "../src/model/densenet121.ts";
import { initModelDir } from "../src/model/model-dir.ts";
import { readLabelTable } from "../src/training/dataset.ts";
import { createTrunk, extractBlock5Inputs, extractFeatures } from "../src/training/features.ts";
import { trainHead } from "../src/training/head-trainer.ts";
import { balancingWeights, computeClassFreqs, weightedLossTensor } from "../src/training/loss.ts";
import { normalizationFromSample } from "../src/training/normalization.ts";
import { forward, isLastBlockParam, toParams } from "../src/training/tf-densenet.ts";
import { useCpuBackend } from "../src/training/tfjs.ts";
import { headFromWeights } from "../src/training/head-weights.ts";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const argStr = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const SIZE = 224;
const SEED = 121;
const NIH = resolve(import.meta.dirname, "../../shared/data/nih");
const extractN = arg("extract", 32);
const epochs = arg("epochs", 5);
const steps = arg("steps", 2);
const evalN = arg("eval-images", 520);
const cacheDir = resolve(argStr("cache", ".cache/features"));

const table = readLabelTable(join(NIH, "labels.csv"));
const path = (k: string) => join(NIH, "images", k);
const train = table.rows.filter((r) => r.split === "train");
const valid = table.rows.filter((r) => r.split === "valid");
const weights = randomDenseNet121Weights(SEED);
const spec = await normalizationFromSample(train.map((r) => path(r.key)), SIZE, { sample: 100, seed: 1 });
const tmp = mkdtempSync(join(tmpdir(), "cxr-bench-train-"));
const log = (s: string) => process.stderr.write(`${s}\n`);

// 1. Feature extraction, uncached (fresh cache folder), vs bare ORT on the same tensors.
const trunk = await createTrunk(weights, spec);
const subset = train.slice(0, extractN).map((r) => path(r.key));
const fx = await extractFeatures(trunk, subset.map((p) => ({ path: p, copy: 0 })), { cacheDir: join(tmp, "fresh"), progress: false });
const tensors = await Promise.all(subset.map(async (p) => toModelTensor(await loadPresentationImage(p), spec)));
let bareSeconds = 0;
for (let s = 0; s < tensors.length; s += 8) {
  const chunk = tensors.slice(s, s + 8);
  const x = new Float32Array(chunk.length * 3 * SIZE * SIZE);
  chunk.forEach((t, k) => x.set(t, k * 3 * SIZE * SIZE));
  const t0 = performance.now();
  await trunk.session.run({ [INPUT_NAME]: new ort.Tensor("float32", x, [chunk.length, 3, SIZE, SIZE]) });
  bareSeconds += (performance.now() - t0) / 1000;
}
log(`features: ${extractN} images in ${fx.seconds.toFixed(1)} s; bare trunk session.run ${bareSeconds.toFixed(1)} s`);

// 2. Head-only epochs on the 352 training images (features from the persistent cache; computed once).
const trainFeat = await extractFeatures(trunk, train.map((r) => ({ path: path(r.key), copy: 0 })), { cacheDir, label: "features train (cache fill)" });
const validFeat = await extractFeatures(trunk, valid.map((r) => ({ path: path(r.key), copy: 0 })), { cacheDir, label: "features valid (cache fill)" });
await trunk.close();
const lossWeights = balancingWeights(computeClassFreqs(train.map((r) => r.labels)));
const head = await trainHead(
  headFromWeights(weights, 14),
  { copies: [trainFeat.features], labels: train.map((r) => r.labels) },
  { copies: [validFeat.features], labels: valid.map((r) => r.labels) },
  { epochs, seed: 1, patience: 1000, lossWeights, progress: false },
);
const headEpoch = head.history.reduce((a, h) => a + h.seconds, 0) / head.history.length;
log(`head: ${headEpoch.toFixed(3)} s per epoch`);

// 3. Last dense block: a few steps of 8 on cached block-5 inputs.
const stepImages = train.slice(0, steps * 8);
const b5 = await extractBlock5Inputs(weights, spec, stepImages.map((r) => path(r.key)), { cacheDir, progress: false });
const tf = await useCpuBackend();
const params = toParams(weights, isLastBlockParam);
const trainable = [...params.values()].filter((v) => v.trainable);
const adam = tf.train.adam(1e-4);
const stepSeconds: number[] = [];
for (let s = 0; s < steps; s++) {
  const idx = Array.from({ length: 8 }, (_, k) => s * 8 + k);
  const buf = new Float32Array(8 * b5.grid * b5.grid * 512);
  idx.forEach((i, k) => buf.set(b5.inputs[i]!, k * b5.grid * b5.grid * 512));
  const x = tf.tensor4d(buf, [8, b5.grid, b5.grid, 512]);
  const y = tf.tensor2d(idx.map((i) => stepImages[i]!.labels));
  const t0 = performance.now();
  const loss = adam.minimize(() => weightedLossTensor(y, forward(params, x, "block5"), lossWeights), true, trainable)!;
  await loss.data();
  stepSeconds.push((performance.now() - t0) / 1000);
  tf.dispose([x, y, loss]);
  log(`last block: step ${s + 1} ${stepSeconds.at(-1)!.toFixed(1)} s`);
}
const lastStep = stepSeconds.reduce((a, b) => a + b, 0) / stepSeconds.length;

// 4. Evaluation path over evalN images, and bare session.run of the full model on the first tensors.
const modelDir = join(tmp, "model");
initModelDir({ inputSize: SIZE, seed: SEED, out: modelDir });
const clf = await Classifier.load(modelDir, { threads: 2 });
const evalRows = table.rows.slice(0, evalN);
const te = performance.now();
for (let s = 0; s < evalRows.length; s += clf.batchSize) {
  await Promise.all(evalRows.slice(s, s + clf.batchSize).map(async (r) => clf.infer(await loadPresentationImage(path(r.key)))));
}
const evalSeconds = (performance.now() - te) / 1000;
await clf.close();
const full = await ort.InferenceSession.create(buildDenseNet121Onnx({ inputSize: SIZE, weights }), { intraOpNumThreads: 2, interOpNumThreads: 1 });
const tb = performance.now();
for (const t of tensors) await full.run({ [INPUT_NAME]: new ort.Tensor("float32", t, [1, 3, SIZE, SIZE]) });
const bareEvalPerImage = (performance.now() - tb) / 1000 / tensors.length;
await full.release();
rmSync(tmp, { recursive: true, force: true });

const report = {
  inputSize: SIZE,
  trunk: `DenseNet121 seeded random init (seed ${SEED}), ORT cpu, 2 threads`,
  featureExtraction: { images: extractN, seconds: +fx.seconds.toFixed(2), imagesPerSecond: +(extractN / fx.seconds).toFixed(2), bareTrunkImagesPerSecond: +(extractN / bareSeconds).toFixed(2), ratioCxrOverBare: +(fx.seconds / bareSeconds).toFixed(3) },
  headOnly: { trainImages: train.length, epochs, secondsPerEpoch: +headEpoch.toFixed(3) },
  lastDenseBlock: { batch: 8, steps, secondsPerStep: +lastStep.toFixed(2), stepsPerEpoch: Math.ceil(train.length / 8), estimatedSecondsPerEpoch: +(lastStep * Math.ceil(train.length / 8)).toFixed(0) },
  evaluation: { images: evalRows.length, seconds: +evalSeconds.toFixed(1), imagesPerSecond: +(evalRows.length / evalSeconds).toFixed(2), bareFullModelSecondsPerImage: +bareEvalPerImage.toFixed(3), ratioCxrOverBare: +(evalSeconds / evalRows.length / bareEvalPerImage).toFixed(3) },
  // The machine state the numbers were taken under, measured rather than assumed.
  machine: { cpus: cpus().length, loadAverage1m: Number(loadavg()[0].toFixed(2)) },
};
console.log(JSON.stringify(report, null, 2));
console.log("");
console.log("what                                   value");
console.log(`feature extraction (cxr, uncached)     ${report.featureExtraction.imagesPerSecond} images/s  (bare trunk session.run ${report.featureExtraction.bareTrunkImagesPerSecond} images/s; cxr/bare time ${report.featureExtraction.ratioCxrOverBare})`);
console.log(`head-only training, 352 images         ${report.headOnly.secondsPerEpoch} s/epoch`);
console.log(`last dense block (tfjs cpu), batch 8   ${report.lastDenseBlock.secondsPerStep} s/step → ~${report.lastDenseBlock.estimatedSecondsPerEpoch} s/epoch (${report.lastDenseBlock.stepsPerEpoch} steps, estimated)`);
console.log(`evaluation, ${report.evaluation.images} images              ${report.evaluation.seconds} s (${report.evaluation.imagesPerSecond} images/s; cxr/bare per image ${report.evaluation.ratioCxrOverBare})`);
