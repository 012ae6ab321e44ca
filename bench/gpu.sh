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
MESA_LIB=$REPO/.cache/mesa/root/usr/lib/x86_64-linux-gnu
[ -e "$MESA_LIB/libvulkan.so.1" ] || { echo "gpu.sh: $MESA_LIB/libvulkan.so.1 is missing; run scripts/setup-mesa.sh where there is network and bring .cache/mesa" >&2; exit 1; }

WORK=$REPO/.cache/gpu-bench
mkdir -p "$WORK/xdg" && chmod 700 "$WORK/xdg"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$WORK/xdg}
if ((LAVAPIPE)); then
  # shellcheck disable=SC1091
  source "$REPO/.cache/mesa/env.sh"
  DEVICE="lavapipe (Mesa software Vulkan)"
else
  export LD_LIBRARY_PATH="$MESA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  ICD=""
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
    [ -f "$f" ] && { ICD=$f; break; }
  done
  if [ -z "$ICD" ]; then
    glx=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0/ { print $NF; exit }')
    [ -n "$glx" ] || glx=$(ls /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0 2>/dev/null | head -1 || true)
    if [ -z "$glx" ]; then
      echo "gpu.sh: no NVIDIA Vulkan driver: neither nvidia_icd.json nor libGLX_nvidia.so.0 found (a container needs NVIDIA_DRIVER_CAPABILITIES to include graphics)" >&2
      exit 1
    fi
    ICD=$WORK/nvidia_icd.json
    printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s", "api_version": "1.3.0" } }\n' "$glx" > "$ICD"
  fi
  export VK_ICD_FILENAMES=$ICD
  DEVICE=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo "NVIDIA GPU (nvidia-smi unavailable)")
fi
echo "gpu.sh: Vulkan ICD $VK_ICD_FILENAMES; device: $DEVICE" >&2

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
