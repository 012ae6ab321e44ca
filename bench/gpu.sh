#!/usr/bin/env bash
# WebGPU throughput of DenseNet121-14 on a GPU machine that has no network and only the NVIDIA driver.
# It brings what it needs: this repo with node_modules (onnxruntime-node bundles Dawn) and the Vulkan
# loader (libvulkan.so.1) from .cache/mesa, written by scripts/setup-mesa.sh on a machine with network.
# The NVIDIA Vulkan driver comes with the NVIDIA driver (libGLX_nvidia.so.0); when a container exposes the
# library but not its ICD json, one is written here.
#
# Runs the webgpu provider at each size and batch, prints images/s and the max abs difference of the 14
# probabilities against the CPU provider on the same tensors (JSON, then a table).
#
#   bash bench/gpu.sh [--sizes 224,320] [--batches 1,8,32] [--iterations 5] [--lavapipe]
#
# --lavapipe uses Mesa's software Vulkan from .cache/mesa instead of the GPU (to check the script without one).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SIZES=224,320 BATCHES=1,8,32 ITERATIONS=5 LAVAPIPE=0
while (($#)); do
  case "$1" in
    --sizes) SIZES=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --iterations) ITERATIONS=$2; shift 2 ;;
    --lavapipe) LAVAPIPE=1; shift ;;
    *) echo "gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

NODE=${CXR_NODE:-$(command -v node || true)}
[ -n "$NODE" ] || { echo "gpu.sh: no node on PATH (set CXR_NODE to a Node 20 binary)" >&2; exit 1; }
[ -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1 ] || { echo "gpu.sh: node_modules/onnxruntime-node is missing; bring node_modules with the repo" >&2; exit 1; }
SCRIPT=gpu.sh WORK=$REPO/.cache/gpu-bench
# shellcheck source=bench/gpu-env.sh
source "$REPO/bench/gpu-env.sh"

cat > "$WORK/run.mts" <<'EOF'
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Classifier } from "../../src/inference/classifier.ts";
import { initModelDir } from "../../src/model/model-dir.ts";

const sizes = process.env.SIZES!.split(",").map(Number);
const batches = process.env.BATCHES!.split(",").map(Number);
const iterations = Number(process.env.ITERATIONS);
const dir = mkdtempSync(join(tmpdir(), "cxr-gpu-bench-"));
const rows: { size: number; batch: number; webgpuSessionMs: number; firstBatchMs: number; imagesPerSecond: number; cpuImagesPerSecond: number; maxAbsDiff: number }[] = [];
try {
  for (const size of sizes) {
    const modelDir = join(dir, `densenet${size}`);
    initModelDir({ inputSize: size, seed: 1, out: modelDir });
    for (const batch of batches) {
      const per = 3 * size * size;
      const tensors = Array.from({ length: batch }, (_, i) => new Float32Array(per).map((_, j) => Math.sin(j * 0.0007 + i * 0.9) * 1.5));
      const runAll = (c: Classifier) => Promise.all(tensors.map((t) => c.inferTensor(t)));
      let t0 = performance.now();
      const gpu = await Classifier.load(modelDir, { provider: "webgpu", batchSize: batch });
      const webgpuSessionMs = performance.now() - t0;
      t0 = performance.now();
      const gpuResults = await runAll(gpu); // the first batch compiles the shaders
      const firstBatchMs = performance.now() - t0;
      t0 = performance.now();
      for (let i = 0; i < iterations; i++) await runAll(gpu);
      const imagesPerSecond = (batch * iterations) / ((performance.now() - t0) / 1000);
      await gpu.close();
      const cpu = await Classifier.load(modelDir, { provider: "cpu", batchSize: batch });
      t0 = performance.now();
      const cpuResults = await runAll(cpu);
      const cpuImagesPerSecond = batch / ((performance.now() - t0) / 1000);
      await cpu.close();
      let maxAbsDiff = 0;
      cpuResults.forEach((r, i) => r.findings.forEach((f, k) => { maxAbsDiff = Math.max(maxAbsDiff, Math.abs(f.probability - gpuResults[i]!.findings[k]!.probability)); }));
      rows.push({ size, batch, webgpuSessionMs, firstBatchMs, imagesPerSecond, cpuImagesPerSecond, maxAbsDiff });
      process.stderr.write(`size ${size} batch ${batch}: ${imagesPerSecond.toFixed(2)} img/s webgpu, ${cpuImagesPerSecond.toFixed(2)} img/s cpu, max |diff| ${maxAbsDiff.toExponential(2)}\n`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ benchmark: "gpu", device: process.env.DEVICE, iterations, rows, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }, null, 2));
console.log("");
console.log("size  batch  webgpu img/s  cpu img/s  max|p_webgpu - p_cpu|  session ms  first batch ms");
for (const r of rows) console.log(`${String(r.size).padEnd(6)}${String(r.batch).padEnd(7)}${r.imagesPerSecond.toFixed(2).padStart(12)}  ${r.cpuImagesPerSecond.toFixed(2).padStart(9)}  ${r.maxAbsDiff.toExponential(2).padStart(21)}  ${r.webgpuSessionMs.toFixed(0).padStart(10)}  ${r.firstBatchMs.toFixed(0).padStart(14)}`);
EOF
SIZES=$SIZES BATCHES=$BATCHES ITERATIONS=$ITERATIONS DEVICE=$DEVICE exec "$NODE" --import tsx "$WORK/run.mts"
