import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadPresentationImage } from "../image/presentation.ts";
import { Classifier, type ClassifierOptions } from "../inference/classifier.ts";
import { DatasetError, readLabelTable, selectSplit, type LabeledRow } from "../training/dataset.ts";
import { Progress } from "../training/progress.ts";
import { DicomWebClient, tagString } from "./dicomweb.ts";
import { computeMetrics, writeEvaluation, type EvaluationMetrics, type Predictions } from "./report.ts";

/**
 * `cxr audit`: the evaluation of `cxr eval`, over archived studies pulled from a PACS through
 * DICOMweb. Rows of the labels CSV are keyed by AccessionNumber (a study: its first CR/DX series'
 * first instance) or SOPInstanceUID. Each row's outcome is appended to <out>/audit-state.jsonl as
 * soon as it is known, so an interrupted audit resumes where it stopped (rows that were not evaluated are
 * tried again: the PACS may have been unreachable); retrieved instances are kept under <out>/instances.
 * Studies that cannot be found, retrieved or read are listed with the reason.
 */
export interface AuditOptions {
  dicomweb: string;
  labels: string;
  model: string;
  out: string;
  split?: string;
  /** Ignore a previous run's state in <out> and start over. */
  fresh?: boolean;
  bootstrapIterations?: number;
  seed?: number;
  classifier?: ClassifierOptions;
  progress?: boolean;
  log?: (line: string) => void;
}

type Outcome = { key: string; ok: true; sopInstanceUid: string; probabilities: number[] } | { key: string; ok: false; reason: string };

const STATE = "audit-state.jsonl";
const IMAGE_MODALITIES = new Set(["CR", "DX"]);

async function locate(client: DicomWebClient, keyColumn: string, key: string): Promise<{ study: string; series: string; sop: string }> {
  if (keyColumn === "SOPInstanceUID") {
    const found = await client.qido("/instances", { SOPInstanceUID: key, includefield: "0020000D,0020000E" });
    if (found.length === 0) throw new Error(`no instance with SOPInstanceUID ${key} in the PACS`);
    const study = tagString(found[0]!, "0020000D");
    const series = tagString(found[0]!, "0020000E");
    if (!study || !series) throw new Error(`QIDO-RS answer for SOPInstanceUID ${key} lacks Study/Series Instance UID`);
    return { study, series, sop: key };
  }
  const studies = await client.qido("/studies", { AccessionNumber: key });
  if (studies.length === 0) throw new Error(`no study with AccessionNumber ${key} in the PACS`);
  if (studies.length > 1) throw new Error(`${studies.length} studies share AccessionNumber ${key}; cannot tell which one was labelled`);
  const study = tagString(studies[0]!, "0020000D");
  if (!study) throw new Error(`QIDO-RS answer for AccessionNumber ${key} lacks the Study Instance UID`);
  const series = await client.qido(`/studies/${study}/series`, { includefield: "00080060" });
  const image = series.find((s) => IMAGE_MODALITIES.has(tagString(s, "00080060") ?? ""));
  if (!image) throw new Error(`study ${study} has no CR/DX series (modalities: ${series.map((s) => tagString(s, "00080060") ?? "?").join(", ") || "none"})`);
  const seriesUid = tagString(image, "0020000E");
  if (!seriesUid) throw new Error(`QIDO-RS answer for the series of study ${study} lacks the Series Instance UID`);
  const instances = await client.qido(`/studies/${study}/series/${seriesUid}/instances`);
  const sop = instances.map((i) => tagString(i, "00080018")).find((x): x is string => !!x);
  if (!sop) throw new Error(`series ${seriesUid} of study ${study} has no instances`);
  return { study, series: seriesUid, sop };
}

export async function auditPacs(opts: AuditOptions): Promise<{ metrics: EvaluationMetrics; predictions: Predictions; resumed: number }> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  mkdirSync(join(opts.out, "instances"), { recursive: true });
  const statePath = join(opts.out, STATE);
  if (opts.fresh && existsSync(statePath)) rmSync(statePath);
  const done = new Map<string, Outcome>();
  if (existsSync(statePath)) {
    const text = readFileSync(statePath, "utf8");
    // A torn last line has no newline: end it, so that the next outcome appended is a line of its own.
    if (text && !text.endsWith("\n")) appendFileSync(statePath, "\n");
    text.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      try {
        const o = JSON.parse(line) as Outcome;
        // Only evaluated rows are kept: a failure may have been transient (network, PACS down) and is tried again.
        if (o.ok) done.set(o.key, o);
      } catch {
        // A line torn by an interrupted write: that row is done again (and its new outcome appended).
        log(`${statePath}:${i + 1}: unreadable state line (torn by an interrupted run?); its row is evaluated again`);
      }
    });
  }
  const client = new DicomWebClient(opts.dicomweb);
  const classifier = await Classifier.load(opts.model, { threads: 2, ...opts.classifier });
  try {
    const labelNames = classifier.card.labels.map((l) => l.name);
    const table = readLabelTable(opts.labels, labelNames);
    // Checked before any row: otherwise every row would be recorded as "not evaluated" for the same reason.
    if (table.keyColumn !== "AccessionNumber" && table.keyColumn !== "SOPInstanceUID") throw new DatasetError(`${opts.labels}: cxr audit needs labels keyed by AccessionNumber or SOPInstanceUID, not ${table.keyColumn}`);
    const rows: LabeledRow[] = selectSplit(table, opts.split);
    const resumed = rows.filter((r) => done.has(r.key)).length;
    if (resumed) log(`resuming: ${resumed} of ${rows.length} rows already evaluated (${statePath}); the others are tried (again)`);
    const bar = opts.progress === false ? undefined : new Progress("audit", rows.length - resumed);
    for (const row of rows) {
      if (done.has(row.key)) continue;
      let outcome: Outcome;
      try {
        const loc = await locate(client, table.keyColumn, row.key);
        const path = join(opts.out, "instances", `${loc.sop}.dcm`);
        if (!existsSync(path)) writeFileSync(path, await client.retrieveInstance(loc.study, loc.series, loc.sop));
        const img = await loadPresentationImage(path).catch((err: Error) => {
          throw new Error(`study ${loc.study}, instance ${loc.sop}: ${err.message.split("\n")[0]}`);
        });
        const result = await classifier.infer(img);
        outcome = { key: row.key, ok: true, sopInstanceUid: loc.sop, probabilities: result.findings.map((f) => f.probability) };
      } catch (err) {
        outcome = { key: row.key, ok: false, reason: (err as Error).message.split("\n")[0]! };
        log(`not evaluated: ${table.keyColumn} ${row.key}: ${outcome.reason}`);
      }
      appendFileSync(statePath, JSON.stringify(outcome) + "\n");
      done.set(row.key, outcome);
      bar?.tick();
    }
    bar?.done();

    const p: Predictions = { labelNames, keys: [], truth: [], probabilities: [] };
    const skipped: { key: string; reason: string }[] = [];
    for (const row of rows) {
      const o = done.get(row.key)!;
      if (o.ok) {
        p.keys.push(row.key);
        p.truth.push(row.labels);
        p.probabilities.push(o.probabilities);
      } else skipped.push({ key: `${table.keyColumn} ${row.key}`, reason: o.reason });
    }
    const metrics = computeMetrics(p, { iterations: opts.bootstrapIterations, seed: opts.seed });
    metrics.skipped = skipped;
    const card = classifier.card;
    metrics.model = { name: card.name, version: card.version, deviceUid: card.deviceUid };
    await writeEvaluation(opts.out, p, metrics, {
      title: `QA audit of ${card.name} ${card.version} over archived studies`,
      details: [
        ["PACS (DICOMweb)", opts.dicomweb],
        ["Model", `${opts.model} (Device UID ${card.deviceUid})`],
        ["Labels", opts.labels + (opts.split ? ` (Split = ${opts.split})` : "")],
        ["Rows", `${rows.length} (${p.keys.length} evaluated, ${skipped.length} not evaluated; ${resumed} taken from the previous run's state)`],
      ],
    });
    return { metrics, predictions: p, resumed };
  } finally {
    await classifier.close();
  }
}
