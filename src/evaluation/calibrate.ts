import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { MODEL_FILE, readModelCard, writeModelCard, type ModelCard } from "../model/card.ts";
import type { ClassifierOptions } from "../inference/classifier.ts";
import { DatasetError, parseCsv, readLabelTable, selectSplit } from "../training/dataset.ts";
import { evaluateModel } from "./evaluate.ts";
import { atThreshold, thresholdFor, type OperatingPoint, type Target } from "./operating-point.ts";
import type { Predictions } from "./report.ts";

/**
 * `cxr calibrate`: a site sets the operating points from its own labelled studies. The model's
 * probabilities on the data (run now, or read from an earlier eval/audit's predictions.csv) give each
 * label the threshold that reaches the target; a new model folder gets the same weights with a new
 * card version recording the data, the target, and the achieved sensitivity/specificity (Wilson 95%
 * CIs), and a report shows how each threshold moved.
 */
export interface CalibrateOptions {
  labels: string;
  model: string;
  out: string;
  target: Target;
  /** Targets per label that replace `target`. */
  perLabel?: Record<string, Target>;
  /** Images to run the model on (as `cxr eval`); or `predictions`. */
  images?: string;
  /** predictions.csv of an earlier `cxr eval`/`cxr audit` of the same model, keyed like the labels CSV. */
  predictions?: string;
  split?: string;
  classifier?: ClassifierOptions;
  now?: Date;
}

export interface LabelMove {
  label: string;
  target: string;
  previous: OperatingPoint;
  /** Absent when the data has none of the class the target is about: the previous threshold is kept. */
  chosen?: OperatingPoint;
  note?: string;
}

export interface CalibrationReport {
  model: { name: string; previousVersion: string; version: string; deviceUid: string };
  data: string;
  images: number;
  moves: LabelMove[];
  out: { model: string; report: string };
}

const describeTarget = (t: Target) => `${t.metric} >= ${t.value}`;
const f3 = (x: number | null) => (x === null ? "n/a" : x.toFixed(3));
/** Thresholds and moves with 4 decimals: a threshold moved to the neighbouring score can move by less than 0.001. */
const f4 = (x: number) => x.toFixed(4);
const ci = (c: [number, number] | null) => (c ? `${f3(c[0])}–${f3(c[1])}` : "n/a");

/** Rows of a predictions.csv joined to the labels by key; a key in one file but not the other is an error naming it. */
function predictionsFromCsv(path: string, labelsCsv: string, split: string | undefined, labelNames: string[]): Predictions {
  const table = readLabelTable(labelsCsv, labelNames);
  const rows = selectSplit(table, split);
  const [header, ...body] = parseCsv(readFileSync(path, "utf8").replace(/^\uFEFF/, ""));
  if (!header) throw new DatasetError(`${path}: empty predictions file`);
  const cols = labelNames.map((l) => header.indexOf(l));
  const missing = labelNames.filter((_, j) => cols[j]! < 0);
  if (missing.length) throw new DatasetError(`${path}: no column for ${missing.join(", ")}`);
  const byKey = new Map(body.filter((r) => r.length > 1).map((r) => [r[0]!, cols.map((c) => Number(r[c]))]));
  const p: Predictions = { labelNames, keys: [], truth: [], probabilities: [] };
  for (const row of rows) {
    const probs = byKey.get(row.key);
    if (!probs) throw new DatasetError(`${path}: no prediction for ${row.key} (line ${row.line} of ${labelsCsv})`);
    p.keys.push(row.key);
    p.truth.push(row.labels);
    p.probabilities.push(probs);
  }
  return p;
}

export async function calibrateModel(o: CalibrateOptions): Promise<CalibrationReport> {
  const card = readModelCard(o.model);
  const labelNames = card.labels.map((l) => l.name);
  const unknown = Object.keys(o.perLabel ?? {}).filter((l) => !labelNames.includes(l));
  if (unknown.length) throw new DatasetError(`--per-label ${unknown.join(", ")}: not a label of ${o.model} (${labelNames.join(", ")})`);
  let p: Predictions;
  if (o.predictions) p = predictionsFromCsv(o.predictions, o.labels, o.split, labelNames);
  else if (o.images) p = (await evaluateModel({ labels: o.labels, images: o.images, model: o.model, out: join(o.out, "evaluation"), split: o.split, classifier: o.classifier, progress: false, log: () => {} })).predictions;
  else throw new DatasetError("calibrate needs --images (run the model) or --predictions (an earlier eval/audit of this model)");
  if (p.keys.length === 0) throw new DatasetError(`${o.labels}: no labelled images${o.split ? ` in split ${o.split}` : ""} to calibrate on`);

  const now = o.now ?? new Date();
  const data = `${basename(o.labels)}${o.split ? ` (Split = ${o.split})` : ""}, ${p.keys.length} images${o.predictions ? `, probabilities from ${basename(o.predictions)}` : ""}`;
  const moves: LabelMove[] = card.labels.map((l, j) => {
    const truth = p.truth.map((r) => r[j]!);
    const score = p.probabilities.map((r) => r[j]!);
    const target = o.perLabel?.[l.name] ?? o.target;
    const chosen = thresholdFor(truth, score, target);
    const previous = atThreshold(truth, score, l.threshold);
    return chosen
      ? { label: l.name, target: describeTarget(target), previous, chosen }
      : { label: l.name, target: describeTarget(target), previous, note: `no ${target.metric === "sensitivity" ? "positive" : "negative"} ${l.name} image in the data: threshold kept` };
  });
  const version = `${card.version}+site.${now.toISOString().slice(0, 19).replace(/[-:]/g, "")}`;
  const newCard: ModelCard = {
    ...card,
    version,
    labels: card.labels.map((l, j) => {
      const m = moves[j]!;
      if (!m.chosen) return { ...l, thresholdMethod: `${l.thresholdMethod} (kept by cxr calibrate: ${m.note})` };
      const c = m.chosen;
      return {
        ...l,
        threshold: c.threshold,
        thresholdMethod: `cxr calibrate: ${m.target} on ${data}; achieved sensitivity ${f3(c.sensitivity)} (95% CI ${ci(c.sensitivityCi95)}), specificity ${f3(c.specificity)} (95% CI ${ci(c.specificityCi95)})`,
      };
    }),
    operatingPoints: {
      previousVersion: card.version,
      data,
      target: [describeTarget(o.target), ...Object.entries(o.perLabel ?? {}).map(([l, t]) => `${l}: ${describeTarget(t)}`)].join("; "),
      chosenAt: now.toISOString(),
      labels: Object.fromEntries(moves.map((m) => [m.label, { previousThreshold: m.previous.threshold, threshold: m.chosen?.threshold ?? m.previous.threshold, target: m.target, achieved: m.chosen ?? m.previous, ...(m.note && { note: m.note }) }])),
    },
    createdAt: now.toISOString(),
  };
  const modelOut = join(o.out, "model");
  mkdirSync(modelOut, { recursive: true });
  copyFileSync(join(o.model, MODEL_FILE), join(modelOut, MODEL_FILE));
  writeModelCard(modelOut, newCard);
  const report: CalibrationReport = {
    model: { name: card.name, previousVersion: card.version, version, deviceUid: card.deviceUid },
    data,
    images: p.keys.length,
    moves,
    out: { model: modelOut, report: join(o.out, "calibration.md") },
  };
  writeFileSync(join(o.out, "calibration.json"), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(report.out.report, calibrationMarkdown(report));
  return report;
}

export function calibrationMarkdown(r: CalibrationReport): string {
  const rows = r.moves.map((m) => {
    const c = m.chosen;
    const d = c ? c.threshold - m.previous.threshold : 0;
    const move = c ? `${d >= 0 ? "+" : "−"}${f4(Math.abs(d))}` : "kept";
    return `| ${m.label} | ${m.target} | ${m.previous.tp + m.previous.fn}/${m.previous.tn + m.previous.fp} | ${f4(m.previous.threshold)} | ${f4(c ? c.threshold : m.previous.threshold)} | ${move} | ${f3(m.previous.sensitivity)} → ${c ? `${f3(c.sensitivity)} (${ci(c.sensitivityCi95)})` : "—"} | ${f3(m.previous.specificity)} → ${c ? `${f3(c.specificity)} (${ci(c.specificityCi95)})` : "—"} |${m.note ? ` ${m.note}` : ""}`;
  });
  return [
    `# Operating points of ${r.model.name}: ${r.model.previousVersion} → ${r.model.version}`,
    "",
    `Data: ${r.data}. Same weights (Device UID ${r.model.deviceUid}); new model folder: ${r.out.model}.`,
    "Sensitivity and specificity on the calibration data itself, with Wilson 95% CIs; check them on other data (`cxr eval` with the new model).",
    "",
    "| label | target | positives/negatives | previous threshold | new threshold | move | sensitivity before → after (95% CI) | specificity before → after (95% CI) |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}
