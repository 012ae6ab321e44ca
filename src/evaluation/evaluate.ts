import { loadPresentationImage } from "../image/presentation.ts";
import { Classifier, type ClassifierOptions } from "../inference/classifier.ts";
import { readLabelTable, resolveImages, selectSplit } from "../training/dataset.ts";
import { Progress } from "../training/progress.ts";
import { computeMetrics, writeEvaluation, type EvaluationMetrics, type Predictions } from "./report.ts";

export interface EvalOptions {
  labels: string;
  images: string;
  model: string;
  out: string;
  split?: string;
  bootstrapIterations?: number;
  seed?: number;
  classifier?: ClassifierOptions;
  progress?: boolean;
  log?: (line: string) => void;
}

/**
 * `cxr eval`: the deployed path end to end — each image through the one preprocessing path and the
 * model's ONNX via the inference Classifier — then AUROC with bootstrap CIs, plots and the report.
 * Rows without an image file, and images that cannot be read, are listed in the report, not dropped.
 */
export async function evaluateModel(opts: EvalOptions): Promise<{ metrics: EvaluationMetrics; predictions: Predictions }> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const classifier = await Classifier.load(opts.model, opts.classifier);
  try {
    const labelNames = classifier.card.labels.map((l) => l.name);
    const table = readLabelTable(opts.labels, labelNames);
    const rows = selectSplit(table, opts.split);
    const { resolved, unresolved } = resolveImages(table, rows, opts.images);
    const skipped = unresolved.map((u) => ({ key: u.row.key, reason: u.reason }));
    for (const s of skipped) log(`skipped ${s.key}: ${s.reason}`);
    const p: Predictions = { labelNames, keys: [], truth: [], probabilities: [] };
    const bar = opts.progress === false ? undefined : new Progress("eval", resolved.length);
    // A few images in flight so the session pool can batch them.
    const inflight = Math.max(1, classifier.batchSize);
    for (let s = 0; s < resolved.length; s += inflight) {
      const chunk = resolved.slice(s, s + inflight);
      const results = await Promise.all(
        chunk.map(async (r) => {
          let stage = "cannot read";
          try {
            const img = await loadPresentationImage(r.path);
            stage = "inference failed on";
            return { r, result: await classifier.infer(img) };
          } catch (err) {
            return { r, error: `${stage} ${r.path}: ${(err as Error).message.split("\n")[0]!}` };
          }
        }),
      );
      for (const x of results) {
        if (x.error !== undefined) {
          skipped.push({ key: x.r.key, reason: x.error });
          log(`skipped ${x.r.key}: ${x.error}`);
          continue;
        }
        p.keys.push(x.r.key);
        p.truth.push(x.r.labels);
        p.probabilities.push(x.result!.findings.map((f) => f.probability));
      }
      bar?.tick(chunk.length);
    }
    bar?.done();
    const metrics = computeMetrics(p, { iterations: opts.bootstrapIterations, seed: opts.seed, thresholds: classifier.card.labels.map((l) => l.threshold) });
    metrics.skipped = skipped;
    const card = classifier.card;
    metrics.model = { name: card.name, version: card.version, deviceUid: card.deviceUid };
    await writeEvaluation(opts.out, p, metrics, {
      title: `Evaluation of ${card.name} ${card.version}`,
      details: [
        ["Model", `${opts.model} (Device UID ${card.deviceUid})`],
        ["Model training", card.training.summary],
        ["Labels", opts.labels + (opts.split ? ` (Split = ${opts.split})` : "")],
        ["Images", opts.images],
        ["Preprocessing", `${card.input.size}px ${card.input.layout}, pixelScale ${card.input.pixelScale}, mean ${card.input.mean.join("/")}, std ${card.input.std.join("/")}`],
      ],
    });
    return { metrics, predictions: p };
  } finally {
    await classifier.close();
  }
}
