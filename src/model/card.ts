import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { deriveUid, isValidUid } from "../dicom/uid.ts";
import type { InputSpec } from "../image/tensor.ts";
import { findingCode } from "./labels.ts";
import type { IModelProto } from "./onnx-builder.ts";

/** The files of a model folder. */
export const MODEL_FILE = "model.onnx";
export const CARD_FILE = "model-card.json";

/** DICOM (CodeValue, CodingSchemeDesignator, CodeMeaning). */
export interface CodedConcept {
  value: string;
  scheme: string;
  meaning: string;
}
export interface CardLabel {
  name: string;
  code: CodedConcept;
  threshold: number;
  thresholdMethod: string;
}
/** The card's input is the `InputSpec` of the one preprocessing path (src/image/tensor.ts). */
export type CardInputSpec = InputSpec;
export interface ModelCard {
  name: string;
  version: string;
  manufacturer: string;
  /** Changes whenever the weights change (derived from weightsSha256). */
  deviceUid: string;
  weightsSha256: string;
  architecture: string;
  /** In output order of `outputs.probabilities`. */
  labels: CardLabel[];
  input: CardInputSpec;
  /** ONNX output names. */
  outputs: { probabilities: string; features: string };
  training: { summary: string; data?: string; metrics?: Record<string, unknown> };
  /** How the labels' operating points were last set from a site's labelled studies (`cxr calibrate`); absent before that. */
  operatingPoints?: OperatingPointsRecord;
  /** What an imported model was made from (`cxr model import`); absent for models cxr built itself. */
  source?: ModelSource;
  createdAt: string;
}

export interface OperatingPointsRecord {
  /** The card version the thresholds were moved from. */
  previousVersion: string;
  /** The labelled data they were chosen on (CSV, split, number of images). */
  data: string;
  /** The rule, e.g. "sensitivity >= 0.95" (per label where overridden). */
  target: string;
  chosenAt: string;
  /** Per label: previous and new threshold, achieved sensitivity/specificity with 95% CIs on the data. */
  labels: Record<string, unknown>;
}

/** The imported file, as found in it: format and layout, what it held, who wrote it, where the head came from. */
export interface ModelSource {
  /** Base name of the imported file. */
  file: string;
  /** e.g. "Keras 3 .keras archive", "Keras 2 HDF5", "PyTorch state dict (safetensors)", "ONNX". */
  format: string;
  contents: "weights only" | "full model";
  /** The writer the file names, verbatim (Keras version and backend, safetensors metadata, ONNX producer). */
  writer?: string;
  /** e.g. `Dense "dense" (14 outputs, sigmoid) from the file`, or `random (seed 0) — not trained`. */
  head: string;
}

export const DEFAULT_THRESHOLD = 0.5;
export const DEFAULT_THRESHOLD_METHOD = "default — not calibrated";

const triple = z.tuple([z.number().finite(), z.number().finite(), z.number().finite()]);
const codedConcept = z.object({ value: z.string().min(1), scheme: z.string().min(1), meaning: z.string().min(1) });
const cardSchema = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  manufacturer: z.string().min(1),
  deviceUid: z.string().refine(isValidUid, "must be a valid DICOM UID (digits and dots, at most 64 characters)"),
  weightsSha256: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits (SHA-256)"),
  architecture: z.string().min(1),
  labels: z
    .array(
      z.object({
        name: z.string().min(1),
        code: codedConcept,
        threshold: z.number().min(0).max(1),
        thresholdMethod: z.string().min(1),
      }),
    )
    .min(1, "must list at least one label")
    .refine((ls) => new Set(ls.map((l) => l.name)).size === ls.length, "label names must be unique"),
  input: z.object({
    size: z.number().int().min(32),
    layout: z.enum(["NCHW", "NHWC"]),
    pixelScale: z.number().positive(),
    mean: triple,
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
  }),
  outputs: z.object({ probabilities: z.string().min(1), features: z.string().min(1) }),
  training: z.object({ summary: z.string().min(1), data: z.string().optional(), metrics: z.record(z.string(), z.unknown()).optional() }),
  operatingPoints: z
    .object({ previousVersion: z.string().min(1), data: z.string().min(1), target: z.string().min(1), chosenAt: z.string().min(1), labels: z.record(z.string(), z.unknown()) })
    .optional(),
  source: z
    .object({ file: z.string().min(1), format: z.string().min(1), contents: z.enum(["weights only", "full model"]), writer: z.string().optional(), head: z.string().min(1) })
    .optional(),
  createdAt: z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be an ISO 8601 timestamp"),
});

/** Validates a parsed card; the error lists every problem as `field.path: reason`, naming the file. */
export function parseModelCard(value: unknown, source: string): ModelCard {
  const r = cardSchema.safeParse(value);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(card)"}: ${i.message}`);
    throw new Error(`${source}: invalid model card — ${problems.join("; ")}`);
  }
  const card = r.data as ModelCard;
  const expectedUid = deviceUidFor(card.weightsSha256);
  if (card.deviceUid !== expectedUid) throw new Error(`${source}: invalid model card — deviceUid ${card.deviceUid} is not the one derived from weightsSha256 (${expectedUid}); the card was edited or belongs to other weights`);
  return card;
}

/** `<dir>/model-card.json`, validated. */
export function readModelCard(dir: string): ModelCard {
  const path = join(dir, CARD_FILE);
  if (!existsSync(path)) throw new Error(`${path}: no model card (expected ${CARD_FILE} beside ${MODEL_FILE})`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return parseModelCard(json, path);
}

export function writeModelCard(dir: string, card: ModelCard): string {
  const path = join(dir, CARD_FILE);
  parseModelCard(card, path);
  writeFileSync(path, `${JSON.stringify(card, null, 2)}\n`);
  return path;
}

/** The Device UID of a set of weights: the same weights always give the same UID, any change gives another. */
export function deviceUidFor(weightsSha256: string): string {
  return deriveUid("cxr-triage model weights", weightsSha256);
}

/**
 * SHA-256 over every initializer of the graph (sorted by name: name, data type, dims, raw bytes). It ignores
 * doc strings and metadata, so re-saving the same weights keeps the Device UID while any weight change moves it.
 */
export function weightsSha256(model: IModelProto): string {
  const h = createHash("sha256");
  const inits = [...(model.graph?.initializer ?? [])].sort((a, b) => ((a.name ?? "") < (b.name ?? "") ? -1 : (a.name ?? "") > (b.name ?? "") ? 1 : 0));
  for (const t of inits) {
    h.update(`${t.name}\u0000${t.dataType}\u0000${(t.dims ?? []).join(",")}\u0000`);
    if (t.rawData && t.rawData.length > 0) h.update(t.rawData);
    else if (t.floatData && t.floatData.length > 0) h.update(new Uint8Array(Float32Array.from(t.floatData).buffer));
    else if (t.int64Data && t.int64Data.length > 0) h.update(t.int64Data.map(String).join(","));
    else if (t.int32Data && t.int32Data.length > 0) h.update(new Uint8Array(Int32Array.from(t.int32Data).buffer));
    else if (t.doubleData && t.doubleData.length > 0) h.update(new Uint8Array(Float64Array.from(t.doubleData).buffer));
    h.update("\u0001");
  }
  return h.digest("hex");
}

/**
 * Checks that a model file holds the weights its card names (same SHA-256, hence the same Device UID), so a
 * swapped or edited model file cannot report results under another model's identity. `path` names the file.
 */
export function checkWeightsMatchCard(model: IModelProto, card: ModelCard, path: string): void {
  const sha = weightsSha256(model);
  if (sha !== card.weightsSha256) throw new Error(`${path}: weights SHA-256 ${sha} differs from the card's ${card.weightsSha256} (device UID ${card.deviceUid}); the model file was replaced or the card belongs to other weights`);
}

/** Card labels with their coded concepts and the default, uncalibrated operating point. */
export function defaultCardLabels(names: readonly string[], thresholds: Record<string, { threshold: number; method: string }> = {}): CardLabel[] {
  return names.map((name) => ({
    name,
    code: findingCode(name),
    threshold: thresholds[name]?.threshold ?? DEFAULT_THRESHOLD,
    thresholdMethod: thresholds[name]?.method ?? DEFAULT_THRESHOLD_METHOD,
  }));
}

export interface CardFields {
  name?: string;
  version?: string;
  manufacturer?: string;
  architecture: string;
  labels: CardLabel[];
  input: CardInputSpec;
  outputs: { probabilities: string; features: string };
  training: ModelCard["training"];
  source?: ModelSource;
  now?: Date;
}

/** A complete card for a model: the weights' hash and Device UID are computed from the model itself. */
export function buildModelCard(model: IModelProto, fields: CardFields): ModelCard {
  const sha = weightsSha256(model);
  return {
    name: fields.name ?? "cxr-triage DenseNet121-14",
    version: fields.version ?? sha.slice(0, 12),
    manufacturer: fields.manufacturer ?? "cxr-triage",
    deviceUid: deviceUidFor(sha),
    weightsSha256: sha,
    architecture: fields.architecture,
    labels: fields.labels,
    input: fields.input,
    outputs: fields.outputs,
    training: fields.training,
    ...(fields.source && { source: fields.source }),
    createdAt: (fields.now ?? new Date()).toISOString(),
  };
}
