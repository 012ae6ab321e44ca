import { imageStatistics } from "../gate/statistics.ts";
import { loadPresentationImage } from "../image/presentation.ts";
import { Classifier, type ClassifierOptions } from "../inference/classifier.ts";
import { readLabelTable, resolveImages, selectSplit } from "../training/dataset.ts";
import { basename } from "node:path";
import { inputValues, type DriftReference } from "./monitor.ts";

/** The reference sample of drift monitoring: the model's probabilities and the input statistics on labelled validation images. */
export async function buildDriftReference(o: { labels: string; images: string; model: string; split?: string; classifier?: ClassifierOptions; now?: Date }): Promise<DriftReference> {
  const classifier = await Classifier.load(o.model, o.classifier);
  try {
    const table = readLabelTable(o.labels, classifier.card.labels.map((l) => l.name));
    const { resolved, unresolved } = resolveImages(table, selectSplit(table, o.split), o.images);
    if (unresolved.length) throw new Error(`${o.labels}: ${unresolved.length} rows without an image, e.g. ${unresolved[0]!.reason}`);
    const values: Record<string, number[]> = {};
    const push = (k: string, v: number) => (values[k] ??= []).push(v);
    for (const r of resolved) {
      const img = await loadPresentationImage(r.path);
      for (const [k, v] of Object.entries(inputValues(imageStatistics(img)))) push(k, v);
      for (const f of (await classifier.infer(img)).findings) push(f.label, f.probability);
    }
    const card = classifier.card;
    return {
      source: `${card.name} ${card.version} on ${basename(o.labels)}${o.split ? ` (Split = ${o.split})` : ""}, ${resolved.length} images`,
      createdAt: (o.now ?? new Date()).toISOString(),
      values,
    };
  } finally {
    await classifier.close();
  }
}
