import { basename } from "node:path";
import { readDicom } from "../dicom/read.ts";
import { ImageGate } from "../gate/gate.ts";
import { loadPresentationImage } from "../image/presentation.ts";
import { Classifier, type ClassifierOptions } from "../inference/classifier.ts";
import { extractHeader } from "../intake/header.ts";
import { readLabelTable, resolveImages, selectSplit } from "../training/dataset.ts";
import { inputProperties } from "./input.ts";
import { categoricalValues, inputValues, type DriftReference, type InputProperties } from "./monitor.ts";

/**
 * The reference sample of drift monitoring: on labelled validation images, the model's probabilities,
 * the input statistics, the image gate's outcome, and the header properties where the images are
 * DICOM files. A quantity no image gives (NIH PNGs have no header) is recorded as not available,
 * never filled in.
 */
export async function buildDriftReference(o: { labels: string; images: string; model: string; split?: string; classifier?: ClassifierOptions; now?: Date }): Promise<DriftReference> {
  const classifier = await Classifier.load(o.model, o.classifier);
  const gate = await ImageGate.load();
  try {
    const table = readLabelTable(o.labels, classifier.card.labels.map((l) => l.name));
    const { resolved, unresolved } = resolveImages(table, selectSplit(table, o.split), o.images);
    if (unresolved.length) throw new Error(`${o.labels}: ${unresolved.length} rows without an image, e.g. ${unresolved[0]!.reason}`);
    const values: Record<string, number[]> = {};
    const categories: Record<string, string[]> = {};
    const push = <T>(into: Record<string, T[]>, k: string, v: T | undefined) => v !== undefined && (into[k] ??= []).push(v);
    for (const r of resolved) {
      const img = await loadPresentationImage(r.path);
      let input: InputProperties = {};
      if (img.source.kind === "dicom") {
        const ds = readDicom(r.path, { withPixelData: false }).dataset;
        input = inputProperties(extractHeader(ds).header, ds);
      }
      const g = await gate.check(img);
      for (const [k, v] of Object.entries(inputValues(g.statistics, input))) push(values, k, v);
      for (const [k, v] of Object.entries(categoricalValues({ input, gate: g.pass ? "passed" : g.check }))) push(categories, k, v);
      // The model's probabilities on every image, as the reference of what the model says (the service sees only passed ones).
      for (const f of (await classifier.infer(img)).findings) push(values, f.label, f.probability);
    }
    const unavailable: Record<string, string> = {};
    for (const k of ["manufacturer", "modality", "pixel spacing", "bits stored"]) {
      if (!values[k] && !categories[k]) unavailable[k] = `not available in the reference: no image of ${basename(o.labels)} has a DICOM header giving it`;
    }
    const card = classifier.card;
    return {
      source: `${card.name} ${card.version} on ${basename(o.labels)}${o.split ? ` (Split = ${o.split})` : ""}, ${resolved.length} images`,
      createdAt: (o.now ?? new Date()).toISOString(),
      values,
      categories,
      unavailable,
    };
  } finally {
    await classifier.close();
    await gate.close();
  }
}
