import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { selectionConfigSchema, type SelectionConfig } from "../config/service.ts";
import { dcmjs } from "../dicom/dcmjs.ts";
import { loadPresentationImage } from "../image/presentation.ts";
import { Classifier, type ClassifierOptions } from "../inference/classifier.ts";
import { extractHeader } from "../intake/header.ts";
import { judgeInstance, selectStudy, type SelectableInstance } from "../intake/selection.ts";
import { DatasetError, readLabelTable, selectSplit, type LabeledRow } from "../training/dataset.ts";
import { Progress } from "../training/progress.ts";
import { DicomWebClient, tagString, type DicomJson } from "./dicomweb.ts";
import { DimseArchive, type DimsePeer } from "./dimse-archive.ts";
import { computeMetrics, writeEvaluation, type EvaluationMetrics, type Predictions } from "./report.ts";

/**
 * `cxr audit`: the evaluation of `cxr eval`, over archived studies pulled from a PACS through
 * DICOMweb. Rows of the labels CSV are keyed by AccessionNumber (a study: the image the plugin's series
 * selection picks from the study's WADO-RS metadata) or SOPInstanceUID (that image, if the selection would
 * read it). Each row's outcome is appended to <out>/audit-state.jsonl as
 * soon as it is known, so an interrupted audit resumes where it stopped (rows that were not evaluated are
 * tried again: the PACS may have been unreachable); retrieved instances are kept under <out>/instances.
 * Studies that cannot be found, retrieved or read, or that the selection would not read, are listed with the reason.
 */
export interface AuditOptions {
  /** DICOMweb root of the PACS (QIDO-RS/WADO-RS)… */
  dicomweb?: string;
  /** …or its DIMSE query/retrieve SCP (C-FIND + C-GET). */
  dimse?: DimsePeer;
  labels: string;
  model: string;
  out: string;
  split?: string;
  /** Ignore a previous run's state in <out> and start over. */
  fresh?: boolean;
  bootstrapIterations?: number;
  seed?: number;
  /** The series-selection rules (the service's `selection` section); the service's defaults when absent. */
  selection?: SelectionConfig;
  classifier?: ClassifierOptions;
  progress?: boolean;
  log?: (line: string) => void;
}

type Outcome = { key: string; ok: true; sopInstanceUid: string; probabilities: number[] } | { key: string; ok: false; reason: string };

const STATE = "audit-state.jsonl";

/** The selection's view of archived instances: each one's header, from its WADO-RS metadata. */
function selectable(metadata: DicomJson[], where: string): SelectableInstance[] {
  return metadata.map((json) => {
    const h = extractHeader(dcmjs.data.DicomMetaDictionary.naturalizeDataset(json));
    if (!h.sopInstanceUid || !h.sopClassUid || !h.seriesInstanceUid) throw new Error(`${where}: WADO-RS metadata of an instance lacks its SOP Instance UID, SOP Class UID or Series Instance UID`);
    return { sopInstanceUid: h.sopInstanceUid, sopClassUid: h.sopClassUid, seriesInstanceUid: h.seriesInstanceUid, header: h.header };
  });
}

/**
 * The image the plugin would read for a row, by the plugin's own series selection (`selectStudy` /
 * `judgeInstance`): an audit measures what the product reads, not whichever CR/DX image the PACS lists first.
 */
async function locate(client: DicomWebClient, keyColumn: string, key: string, selection: SelectionConfig): Promise<{ study: string; series: string; sop: string }> {
  if (keyColumn === "SOPInstanceUID") {
    const found = await client.qido("/instances", { SOPInstanceUID: key, includefield: "0020000D,0020000E" });
    if (found.length === 0) throw new Error(`no instance with SOPInstanceUID ${key} in the PACS`);
    const study = tagString(found[0]!, "0020000D");
    const series = tagString(found[0]!, "0020000E");
    if (!study || !series) throw new Error(`QIDO-RS answer for SOPInstanceUID ${key} lacks Study/Series Instance UID`);
    const inst = selectable(await client.metadata(study, series), `study ${study}, series ${series}`).find((i) => i.sopInstanceUid === key);
    if (!inst) throw new Error(`WADO-RS metadata of series ${series} of study ${study} lacks instance ${key}`);
    const decision = judgeInstance(inst, selection);
    if (!decision.eligible) throw new Error(`study ${study}, instance ${key}: not read by the plugin's selection: ${decision.reason}`);
    return { study, series, sop: key };
  }
  const studies = await client.qido("/studies", { AccessionNumber: key });
  if (studies.length === 0) throw new Error(`no study with AccessionNumber ${key} in the PACS`);
  if (studies.length > 1) throw new Error(`${studies.length} studies share AccessionNumber ${key}; cannot tell which one was labelled`);
  const study = tagString(studies[0]!, "0020000D");
  if (!study) throw new Error(`QIDO-RS answer for AccessionNumber ${key} lacks the Study Instance UID`);
  const instances = selectable(await client.metadata(study), `study ${study}`);
  if (instances.length === 0) throw new Error(`study ${study} has no instances`);
  const chosen = selectStudy(instances, selection);
  if (!chosen.chosen) throw new Error(`study ${study}: not read by the plugin's selection: ${chosen.reason}`);
  return { study, series: chosen.chosen.seriesInstanceUid, sop: chosen.chosen.sopInstanceUid };
}

/** Where an audit finds a row's image: the one the plugin's selection reads, as a local Part 10 file. */
interface Archive {
  readonly name: string;
  image(keyColumn: string, key: string, selection: SelectionConfig, dir: string): Promise<{ study: string; sop: string; path: string }>;
}

class DicomWebArchive implements Archive {
  private readonly client: DicomWebClient;
  constructor(readonly url: string) {
    this.client = new DicomWebClient(url);
  }
  get name(): string {
    return `PACS (DICOMweb) ${this.url}`;
  }
  async image(keyColumn: string, key: string, selection: SelectionConfig, dir: string): Promise<{ study: string; sop: string; path: string }> {
    const loc = await locate(this.client, keyColumn, key, selection);
    const path = join(dir, `${loc.sop}.dcm`);
    if (!existsSync(path)) writeFileSync(path, await this.client.retrieveInstance(loc.study, loc.series, loc.sop));
    return { study: loc.study, sop: loc.sop, path };
  }
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
  if (!opts.dicomweb === !opts.dimse) throw new DatasetError("cxr audit reads a PACS over DICOMweb (--dicomweb) or DIMSE (--dimse): give exactly one");
  const archive: Archive = opts.dicomweb ? new DicomWebArchive(opts.dicomweb) : new DimseArchive(opts.dimse!);
  const selection = opts.selection ?? selectionConfigSchema.parse({});
  const classifier = await Classifier.load(opts.model, opts.classifier);
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
        const loc = await archive.image(table.keyColumn, row.key, selection, join(opts.out, "instances"));
        const path = loc.path;
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
    const metrics = computeMetrics(p, { iterations: opts.bootstrapIterations, seed: opts.seed, thresholds: classifier.card.labels.map((l) => l.threshold) });
    metrics.skipped = skipped;
    const card = classifier.card;
    metrics.model = { name: card.name, version: card.version, deviceUid: card.deviceUid };
    await writeEvaluation(opts.out, p, metrics, {
      title: `QA audit of ${card.name} ${card.version} over archived studies`,
      details: [
        ["Archive", archive.name],
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
