#!/usr/bin/env bash
# Whole-network DenseNet121-14 TRAINING throughput (tfjs-backend-webgpu on Dawn for Node, npm `webgpu`)
# on a GPU machine that has no network and only the NVIDIA driver. Self-contained like bench/gpu.sh: it
# needs this repo with node_modules (the `webgpu` package ships Dawn's linux-x64 binary) and the Vulkan
# loader (libvulkan.so.1) from .cache/mesa, written by scripts/setup-mesa.sh on a machine with network.
#
# For each batch size: builds DenseNet121-14 (seeded random init) at the input size, checks the tfjs
# forward pass on the GPU against ORT's CPU provider on the same weights and tensors (max |diff| of the
# 14 probabilities), runs one warm-up step (shader compilation), then timed training steps (forward +
# backward + Adam over every layer, seed's weighted loss) and prints images/s per training step
# (JSON, then a table).
#
#   bash bench/gpu-train.sh [--size 224] [--batches 8,16,32] [--steps 5] [--lavapipe]
#
# --lavapipe uses Mesa's software Vulkan from .cache/mesa instead of the GPU (to check the script without
# one; use --size 32 --batches 2 --steps 1 there: a 224 px step of 8 takes minutes in software).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SIZE=224 BATCHES=8,16,32 STEPS=5 LAVAPIPE=0
while (($#)); do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --lavapipe) LAVAPIPE=1; shift ;;
    *) echo "gpu-train.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

NODE=${CXR_NODE:-$(command -v node || true)}
[ -n "$NODE" ] || { echo "gpu-train.sh: no node on PATH (set CXR_NODE to a Node 20 binary)" >&2; exit 1; }
[ -d node_modules/webgpu/dist/linux-x64 ] || { echo "gpu-train.sh: node_modules/webgpu (Dawn for Node) is missing; bring node_modules with the repo" >&2; exit 1; }
[ -d node_modules/@tensorflow/tfjs-backend-webgpu ] || { echo "gpu-train.sh: node_modules/@tensorflow/tfjs-backend-webgpu is missing" >&2; exit 1; }
SCRIPT=gpu-train.sh WORK=$REPO/.cache/gpu-train-bench
# shellcheck source=bench/gpu-env.sh
source "$REPO/bench/gpu-env.sh"

cat > "$WORK/run.mts" <<'EOF'
import * as ort from "onnxruntime-node";
import { buildDenseNet121Onnx, randomDenseNet121Weights, INPUT_NAME } from "../../src/model/densenet121.ts";
import { weightedLossTensor } from "../../src/training/loss.ts";
import { forward, toParams } from "../../src/training/tf-densenet.ts";
import { useWebGpuBackend } from "../../src/training/tfjs.ts";

const size = Number(process.env.SIZE);
const batches = process.env.BATCHES!.split(",").map(Number);
const steps = Number(process.env.STEPS);
const weights = randomDenseNet121Weights(1);
const tf = await useWebGpuBackend();
process.stderr.write(`tfjs backend: ${tf.getBackend()}\n`);
const lossWeights = { pos: Array.from({ length: 14 }, (_, k) => 0.9 - k * 0.02), neg: Array.from({ length: 14 }, (_, k) => 0.1 + k * 0.02) };
const rows: { size: number; batch: number; maxAbsDiffVsOrtCpu: number; warmupSeconds: number; secondsPerStep: number; imagesPerSecond: number }[] = [];

// Forward parity once: tfjs on the GPU vs ORT cpu on the same weights and tensor.
const session = await ort.InferenceSession.create(buildDenseNet121Onnx({ inputSize: size, weights }), { intraOpNumThreads: 4 });
for (const batch of batches) {
  const params = toParams(weights, () => true);
  const trainable = [...params.values()].filter((v) => v.trainable);
  const adam = tf.train.adam(1e-4);
  const nchw = new Float32Array(batch * 3 * size * size).map((_, j) => Math.sin(j * 0.0007) * 1.5);
  const ref = (await session.run({ [INPUT_NAME]: new ort.Tensor("float32", nchw, [batch, 3, size, size]) })).probabilities!.data as Float32Array;
  const x = tf.tidy(() => tf.transpose(tf.tensor4d(nchw, [batch, 3, size, size]), [0, 2, 3, 1])) as import("@tensorflow/tfjs-core").Tensor4D;
  const p = tf.tidy(() => forward(params, x));
  const got = await p.data();
  p.dispose();
  let maxAbsDiffVsOrtCpu = 0;
  for (let i = 0; i < ref.length; i++) maxAbsDiffVsOrtCpu = Math.max(maxAbsDiffVsOrtCpu, Math.abs(ref[i]! - got[i]!));
  const y = tf.tensor2d(Array.from({ length: batch }, (_, i) => Array.from({ length: 14 }, (_, k) => ((i + k) % 5 === 0 ? 1 : 0))));
  const step = async () => {
    const loss = adam.minimize(() => weightedLossTensor(y, forward(params, x), lossWeights), true, trainable)!;
    await loss.data(); // waits for the GPU
    loss.dispose();
  };
  let t0 = performance.now();
  await step();
  const warmupSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (let s = 0; s < steps; s++) await step();
  const secondsPerStep = (performance.now() - t0) / 1000 / steps;
  rows.push({ size, batch, maxAbsDiffVsOrtCpu, warmupSeconds, secondsPerStep, imagesPerSecond: batch / secondsPerStep });
  process.stderr.write(`size ${size} batch ${batch}: ${(batch / secondsPerStep).toFixed(2)} images/s per training step, max |diff| vs ORT cpu ${maxAbsDiffVsOrtCpu.toExponential(2)}\n`);
  tf.dispose([x, y]);
  adam.dispose();
  for (const v of params.values()) v.dispose();
}
await session.release();
console.log(JSON.stringify({ benchmark: "gpu-train", device: process.env.DEVICE, steps, rows, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }, null, 2));
console.log("");
console.log("size  batch  images/s (train step)  s/step  warm-up s  max|p_tfjs-webgpu - p_ort-cpu|");
for (const r of rows) console.log(`${String(r.size).padEnd(6)}${String(r.batch).padEnd(7)}${r.imagesPerSecond.toFixed(2).padStart(21)}  ${r.secondsPerStep.toFixed(3).padStart(6)}  ${r.warmupSeconds.toFixed(1).padStart(9)}  ${r.maxAbsDiffVsOrtCpu.toExponential(2).padStart(30)}`);
EOF
SIZE=$SIZE BATCHES=$BATCHES STEPS=$STEPS DEVICE=$DEVICE exec "$NODE" --import tsx "$WORK/run.mts"
