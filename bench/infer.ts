/**
 * Per-image latency of (a) a bare `session.run` of DenseNet121-14 with the probabilities as its only output
 * (the peer: what any ORT user pays) and (b) cxr's full path from the preprocessed tensor to 14 findings +
 * 14 exact GradCAM heatmaps (features output, dense-head weights, maps, through the session pool), in the
 * same process, interleaved, same weights. Target: b/a <= 1.15.
 *
 *   npx tsx bench/infer.ts [--sizes 224,320] [--batches 1,8] [--iterations 5] [--threads N] [--provider cpu]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { Classifier } from "../src/inference/classifier.ts";
import { keepOutputs } from "../src/inference/onnx-graph.ts";
import { createSession, isProvider } from "../src/inference/providers.ts";
import { initModelDir } from "../src/model/model-dir.ts";
import { decodeModel, modelInput } from "../src/model/onnx-builder.ts";
import { tempDir } from "../test/helpers/tmp.ts";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "224,320" },
    batches: { type: "string", default: "1,8" },
    iterations: { type: "string", default: "5" },
    threads: { type: "string" },
    provider: { type: "string", default: "cpu" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const batches = values.batches.split(",").map(Number);
const iterations = Number(values.iterations);
const threads = values.threads ? Number(values.threads) : undefined;
const provider = values.provider;
if (!isProvider(provider)) throw new Error(`--provider must be cpu, webgpu, cuda or tensorrt, got ${provider}`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * On a shared, loaded machine single timings scatter widely; the minimum of interleaved runs is the least
 * disturbed estimate of each side, so the ratio is taken from minima (medians are reported too).
 */
interface Row {
  size: number; batch: number;
  bareMsPerImage: { min: number; median: number }; cxrMsPerImage: { min: number; median: number };
  ratio: number; ratioOfMedians: number;
  /** CPU time of the process per image (all ORT threads): the work done, least sensitive to other load. */
  bareCpuMsPerImage: number; cxrCpuMsPerImage: number; cpuRatio: number;
}
const rows: Row[] = [];
const tmp = tempDir("cxr-bench-infer-");
try {
  for (const size of sizes) {
    const dir = join(tmp.dir, `densenet${size}`);
    initModelDir({ inputSize: size, seed: 1, out: dir });
    const bytes = readFileSync(join(dir, "model.onnx"));
    const bare = (await createSession(keepOutputs(bytes, ["probabilities"], "bench"), { provider, threads }, "bench")).session;
    const inputName = modelInput(decodeModel(bytes), "bench").name;
    for (const batch of batches) {
      const classifier = await Classifier.load(dir, { provider, threads, batchSize: batch });
      const per = 3 * size * size;
      const tensors = Array.from({ length: batch }, (_, i) => new Float32Array(per).map((_, j) => Math.sin(j * 0.001 + i)));
      const stacked = new Float32Array(batch * per);
      tensors.forEach((t, i) => stacked.set(t, i * per));
      const cpuA: number[] = [], cpuB: number[] = [];
      const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
      const runBare = async () => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const out = await bare.run({ [inputName]: new ort.Tensor("float32", stacked, [batch, 3, size, size]) });
        if ((out.probabilities!.data as Float32Array).length !== batch * 14) throw new Error("bare run: wrong output size");
        const ms = (performance.now() - t0) / batch;
        cpuA.push(cpuMs(process.cpuUsage(c0)) / batch);
        return ms;
      };
      const runCxr = async () => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        // Submitted together, the pool runs them as one batch of `batch`.
        const results = await Promise.all(tensors.map((t) => classifier.inferTensor(t)));
        if (results.some((r) => r.findings.length !== 14 || r.heatmaps.length !== 14)) throw new Error("cxr run: wrong result");
        const ms = (performance.now() - t0) / batch;
        cpuB.push(cpuMs(process.cpuUsage(c0)) / batch);
        return ms;
      };
      await runBare(); await runCxr(); // warm-up (first-run allocations)
      cpuA.length = 0; cpuB.length = 0;
      const a: number[] = [], b: number[] = [];
      for (let i = 0; i < iterations; i++) {
        // Alternate the order so that neither side always runs right after the other.
        if (i % 2) { a.push(await runBare()); b.push(await runCxr()); } else { b.push(await runCxr()); a.push(await runBare()); }
      }
      const row: Row = {
        size, batch,
        bareMsPerImage: { min: Math.min(...a), median: median(a) },
        cxrMsPerImage: { min: Math.min(...b), median: median(b) },
        ratio: Math.min(...b) / Math.min(...a),
        ratioOfMedians: median(b) / median(a),
        bareCpuMsPerImage: Math.min(...cpuA), cxrCpuMsPerImage: Math.min(...cpuB), cpuRatio: Math.min(...cpuB) / Math.min(...cpuA),
      };
      rows.push(row);
      await classifier.close();
      process.stderr.write(`size ${size} batch ${batch}: bare ${row.bareMsPerImage.min.toFixed(1)} ms/img, cxr ${row.cxrMsPerImage.min.toFixed(1)} ms/img (min)\n`);
    }
    await bare.release();
  }
} finally {
  tmp.cleanup();
}

const peakRssMiB = process.resourceUsage().maxRSS / 1024;
const report = { benchmark: "infer", provider, threads: threads ?? "ort-default", iterations, target: "b/a <= 1.15", rows, peakRssMiB: Math.round(peakRssMiB), ok: rows.every((r) => r.ratio <= 1.15), okCpu: rows.every((r) => r.cpuRatio <= 1.15) };
console.log(JSON.stringify(report, null, 2));
console.log("");
console.log("(a) = bare session.run, probabilities-only model; (b) = cxr tensor → 14 probabilities + 14 heatmaps; ms per image");
console.log("size  batch  (a) wall min/median  (b) wall min/median  b/a min  b/a median  (a) cpu  (b) cpu  b/a cpu");
const mm = (x: { min: number; median: number }) => `${x.min.toFixed(1)} / ${x.median.toFixed(1)}`;
for (const r of rows) console.log(`${String(r.size).padEnd(6)}${String(r.batch).padEnd(7)}${mm(r.bareMsPerImage).padStart(19)}  ${mm(r.cxrMsPerImage).padStart(19)}  ${r.ratio.toFixed(3).padStart(7)}  ${r.ratioOfMedians.toFixed(3).padStart(10)}  ${r.bareCpuMsPerImage.toFixed(1).padStart(7)}  ${r.cxrCpuMsPerImage.toFixed(1).padStart(7)}  ${r.cpuRatio.toFixed(3).padStart(7)}`);
console.log(`peak RSS ${Math.round(peakRssMiB)} MiB`);
