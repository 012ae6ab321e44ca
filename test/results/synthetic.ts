import { deriveUid } from "../../src/dicom/uid.ts";
import type { PresentationImage } from "../../src/image/presentation.ts";
import type { Heatmap, InferenceResult } from "../../src/inference/classifier.ts";
import type { ModelCard } from "../../src/model/card.ts";
import { findingCode, NIH_LABELS } from "../../src/model/labels.ts";

/** A card as src/model/card.ts writes them, for unit tests that need no ONNX model. */
export function syntheticCard(): ModelCard {
  return {
    name: "synthetic-test-model",
    version: "1.2.3",
    manufacturer: "cxr-triage tests",
    deviceUid: deriveUid("synthetic-test-model", "weights"),
    weightsSha256: "0".repeat(64),
    architecture: "synthetic (no network)",
    labels: NIH_LABELS.map((name) => ({ name, code: findingCode(name), threshold: 0.5, thresholdMethod: "test value" })),
    input: { size: 224, layout: "NCHW", pixelScale: 255, mean: [0, 0, 0], std: [1, 1, 1] },
    outputs: { probabilities: "probabilities", features: "features" },
    training: { summary: "untrained — synthetic" },
    createdAt: "2026-01-01T00:00:00.000Z",
  };
}

/** An 8x8 heatmap with one Gaussian blob centred at (cx, cy), given as fractions of the image width/height. */
export function blobHeatmap(label: string, cx: number, cy: number, grid = 8): Heatmap {
  const data = new Float32Array(grid * grid);
  for (let y = 0; y < grid; y++) {
    for (let x = 0; x < grid; x++) {
      const dx = (x + 0.5) / grid - cx, dy = (y + 0.5) / grid - cy;
      data[y * grid + x] = Math.exp(-(dx * dx + dy * dy) / (2 * 0.08 * 0.08));
    }
  }
  const max = Math.max(...data);
  for (let i = 0; i < data.length; i++) data[i] = data[i]! / max;
  return { label, width: grid, height: grid, data };
}

/**
 * A result in card order: `probabilities` for the labels named there (0.1 for the others); every label gets
 * a heatmap, with its blob at `blobs[label]` or at the image centre.
 */
export function syntheticResult(card: ModelCard, probabilities: Record<string, number>, blobs: Record<string, [number, number]> = {}): InferenceResult {
  return {
    findings: card.labels.map((l) => {
      const p = probabilities[l.name] ?? 0.1;
      return { label: l.name, code: l.code, probability: p, threshold: l.threshold, positive: p >= l.threshold };
    }),
    heatmaps: card.labels.map((l) => blobHeatmap(l.name, ...(blobs[l.name] ?? [0.5, 0.5]))),
    card,
    inferenceMs: 1,
  };
}

/** A smooth gray gradient, so a plain pixel's expected gray is known everywhere. */
export function gradientImage(width: number, height: number): PresentationImage {
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = 0.2 + 0.5 * (x / (width - 1));
  return { width, height, data, source: { path: "synthetic-gradient", kind: "dicom" }, steps: { modality: "none", voi: "none", inversion: "none" } };
}

/** A source dataset with the defects real PACS data has: bare-number age, missing Type 2 attributes, non-ASCII name. */
export function syntheticSource(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.1",
    SOPInstanceUID: deriveUid("synthetic", "sop"),
    StudyInstanceUID: deriveUid("synthetic", "study"),
    SeriesInstanceUID: deriveUid("synthetic", "series"),
    Modality: "DX",
    PatientName: [{ Alphabetic: "Müller^Jürgen" }],
    PatientID: "P-1",
    PatientSex: "M",
    PatientAge: "81",
    BodyPartExamined: "CHEST",
    ...overrides,
  };
}
