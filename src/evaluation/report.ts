import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { displayName } from "../model/labels.ts";
import { toCsv } from "../training/dataset.ts";
import { computeClassFreqs } from "../training/loss.ts";
import { auroc, bootstrapAurocCi, calibrationBins, rocCurve } from "./auroc.ts";
import { atThreshold, type OperatingPoint } from "./operating-point.ts";
import { calibrationSpec, classFrequencySpec, renderSvg, rocSpec, svgToPng } from "./plots.ts";

/** `metrics.json` as the command-line contract fixes it (plus context fields). */
export interface LabelMetrics {
  auroc: number | null;
  ci95: [number, number] | null;
  n_pos: number;
  n_neg: number;
  /** Sensitivity/specificity at the model card's threshold (when the evaluation knows the card). */
  operating_point?: OperatingPoint;
}
export interface EvaluationMetrics {
  labels: Record<string, LabelMetrics>;
  /** Mean over labels whose AUROC is defined (both classes present). */
  mean_auroc: number | null;
  n_images: number;
  skipped: { key: string; reason: string }[];
  bootstrap: { iterations: number; seed: number };
  model?: { name: string; version: string; deviceUid: string };
}

export interface Predictions {
  labelNames: string[];
  /** Image identifiers in row order (file name, SOP Instance UID, or accession). */
  keys: string[];
  truth: number[][];
  probabilities: number[][];
}

const column = (m: number[][], j: number) => m.map((r) => r[j]!);
const finite = (x: number) => (Number.isFinite(x) ? x : null);

export function computeMetrics(p: Predictions, opts: { iterations?: number; seed?: number; thresholds?: number[] } = {}): EvaluationMetrics {
  const iterations = opts.iterations ?? 1000;
  const seed = opts.seed ?? 1;
  const labels: Record<string, LabelMetrics> = {};
  const defined: number[] = [];
  p.labelNames.forEach((name, j) => {
    const t = column(p.truth, j);
    const s = column(p.probabilities, j);
    const a = auroc(t, s);
    const nPos = t.filter((v) => v === 1).length;
    const ci = Number.isNaN(a) ? null : bootstrapAurocCi(t, s, { iterations, seed: seed + j });
    const threshold = opts.thresholds?.[j];
    labels[name] = { auroc: finite(a), ci95: ci && [ci[0], ci[1]], n_pos: nPos, n_neg: t.length - nPos, ...(threshold !== undefined && { operating_point: atThreshold(t, s, threshold) }) };
    if (!Number.isNaN(a)) defined.push(a);
  });
  return {
    labels,
    mean_auroc: defined.length ? defined.reduce((x, y) => x + y, 0) / defined.length : null,
    n_images: p.keys.length,
    skipped: [],
    bootstrap: { iterations, seed },
  };
}

export function meanAuroc(truth: number[][], probabilities: number[][]): number {
  const k = truth[0]?.length ?? 0;
  const vals: number[] = [];
  for (let j = 0; j < k; j++) {
    const a = auroc(column(truth, j), column(probabilities, j));
    if (!Number.isNaN(a)) vals.push(a);
  }
  return vals.length ? vals.reduce((x, y) => x + y, 0) / vals.length : NaN;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? "n/a" : x.toFixed(3));

/**
 * Writes the evaluation folder: metrics.json, predictions.csv, roc/calibration/class-frequency as
 * SVG and PNG, and report.html (self-contained: the SVGs are inlined).
 */
export async function writeEvaluation(
  outDir: string,
  p: Predictions,
  metrics: EvaluationMetrics,
  context: { title: string; details: [string, string][] },
): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "metrics.json"), JSON.stringify(metrics, null, 2) + "\n");
  writeFileSync(
    join(outDir, "predictions.csv"),
    toCsv(["Image", ...p.labelNames], p.keys.map((k, i) => [k, ...p.probabilities[i]!.map((v) => +v.toPrecision(7))])),
  );
  const roc = await renderSvg(
    rocSpec(p.labelNames.map((label, j) => ({ label, auroc: metrics.labels[label]!.auroc ?? NaN, points: rocCurve(column(p.truth, j), column(p.probabilities, j)) }))),
  );
  const cal = await renderSvg(calibrationSpec(p.labelNames.map((label, j) => ({ label, bins: calibrationBins(column(p.truth, j), column(p.probabilities, j)) }))));
  const freqs = p.truth.length ? computeClassFreqs(p.truth) : { positive: p.labelNames.map(() => 0), negative: p.labelNames.map(() => 0) };
  const cf = await renderSvg(classFrequencySpec(p.labelNames.map((label, j) => ({ label, positive: freqs.positive[j]!, negative: freqs.negative[j]! }))));
  for (const [name, svg] of [
    ["roc", roc],
    ["calibration", cal],
    ["class-frequency", cf],
  ] as const) {
    writeFileSync(join(outDir, `${name}.svg`), svg);
    writeFileSync(join(outDir, `${name}.png`), svgToPng(svg));
  }
  const rows = p.labelNames
    .map((l) => {
      const m = metrics.labels[l]!;
      const op = m.operating_point;
      const ci = (c: [number, number] | null | undefined) => (c ? ` (${fmt(c[0])} – ${fmt(c[1])})` : "");
      const opCells = op ? `<td>${fmt(op.threshold)}</td><td>${fmt(op.sensitivity)}${ci(op.sensitivityCi95)}</td><td>${fmt(op.specificity)}${ci(op.specificityCi95)}</td>` : "<td>n/a</td><td>n/a</td><td>n/a</td>";
      return `<tr><td>${esc(displayName(l))}</td><td>${fmt(m.auroc)}</td><td>${m.ci95 ? `${fmt(m.ci95[0])} – ${fmt(m.ci95[1])}` : "n/a"}</td><td>${m.n_pos}</td><td>${m.n_neg}</td>${opCells}</tr>`;
    })
    .join("\n");
  const skipped = metrics.skipped.length
    ? `<h2>Not evaluated (${metrics.skipped.length})</h2><table><tr><th>Image / study</th><th>Reason</th></tr>${metrics.skipped
        .map((s) => `<tr><td>${esc(s.key)}</td><td>${esc(s.reason)}</td></tr>`)
        .join("")}</table>`
    : "<p>Every labelled row was evaluated.</p>";
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(context.title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}figure{display:inline-block;margin:1em}</style>
</head><body>
<h1>${esc(context.title)}</h1>
<table>${context.details.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}
<tr><th>Images evaluated</th><td>${metrics.n_images}</td></tr>
<tr><th>Mean AUROC</th><td>${fmt(metrics.mean_auroc)} (over labels with both classes present)</td></tr></table>
<h2>Per-label AUROC (exact, ties = ½) with bootstrap 95% CI (${metrics.bootstrap.iterations} resamples, seed ${metrics.bootstrap.seed})</h2>
<table><tr><th>Label</th><th>AUROC</th><th>95% CI</th><th>Positives</th><th>Negatives</th><th>Card threshold</th><th>Sensitivity (Wilson 95% CI)</th><th>Specificity (Wilson 95% CI)</th></tr>
${rows}</table>
${skipped}
<h2>Plots</h2>
<figure>${roc}<figcaption>roc.svg / roc.png</figcaption></figure>
<figure>${cal}<figcaption>calibration.svg / calibration.png</figcaption></figure>
<figure>${cf}<figcaption>class-frequency.svg / class-frequency.png</figcaption></figure>
<p>Per-image probabilities: <a href="predictions.csv">predictions.csv</a>; numbers: <a href="metrics.json">metrics.json</a>.</p>
</body></html>
`;
  writeFileSync(join(outDir, "report.html"), html);
}
