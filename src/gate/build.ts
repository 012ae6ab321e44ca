import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { loadPresentationImage } from "../image/presentation.ts";
import { readLabelTable, resolveImages, selectSplit, type ResolvedRow } from "../training/dataset.ts";
import { featureScaling, predictHead, trainHead, type HeadWeights } from "../training/head-trainer.ts";
import { balancingWeights, computeClassFreqs } from "../training/loss.ts";
import type { Trunk } from "../training/features.ts";
import { DEMO_DIR } from "../training/demo.ts";
import { FEATURE_CHANNELS } from "../model/densenet121.ts";
import { cachedGateFeatures, GATE_FEATURES } from "./features.ts";
import { atypicality, gateWeightsBytes, type GateModel, type GateSpec } from "./gate.ts";
import { applyFault, FAULTS, type Fault } from "./transforms.ts";

/** An image of the data set as it is ("original") or with one fault applied. */
export interface GateSample {
  row: ResolvedRow;
  variant: "original" | Fault;
}

export function splitRows(labelsCsv: string, imagesDir: string, split: string): ResolvedRow[] {
  const table = readLabelTable(labelsCsv);
  const { resolved, unresolved } = resolveImages(table, selectSplit(table, split), imagesDir);
  if (unresolved.length) throw new Error(`${labelsCsv}: ${unresolved.length} ${split} rows without an image, e.g. ${unresolved[0]!.reason}`);
  return resolved;
}

/** Training and validation: every image as it is, and once with one fault (cycling through the faults), so each split stays half good. */
export function buildSamples(rows: ResolvedRow[]): GateSample[] {
  return rows.flatMap((row, i) => [{ row, variant: "original" as const }, { row, variant: FAULTS[i % FAULTS.length]! }]);
}

/** Held-out measurement: every image as it is and with every fault. */
export function allVariants(rows: ResolvedRow[]): GateSample[] {
  return rows.flatMap((row) => [{ row, variant: "original" as const }, ...FAULTS.map((f) => ({ row, variant: f }))]);
}

export function sampleFeatures(trunk: Trunk, samples: GateSample[], cacheDir: string): Promise<Float32Array[]> {
  return cachedGateFeatures(
    trunk,
    samples.map((s) => ({
      path: s.row.path,
      variant: s.variant === "original" ? "" : s.variant,
      load: async () => {
        const img = await loadPresentationImage(s.row.path);
        return s.variant === "original" ? img : applyFault(img, s.variant);
      },
    })),
    cacheDir,
  );
}

const faultLabels = (s: GateSample) => FAULTS.map((f) => (s.variant === f ? 1 : 0));

/**
 * Operating point of a score where good images must pass: just above the highest score of the
 * validation split's good images (no good validation image fails), never below 0.5 for probabilities.
 */
function aboveGood(goodScores: number[], floor: number): number {
  return Math.max(floor, Math.max(...goodScores) * 1.001);
}

export interface GateBuildOptions {
  labelsCsv: string;
  imagesDir: string;
  trunk: Trunk;
  trunkSpec: GateSpec["trunk"];
  cacheDir: string;
  out: string;
  seed?: number;
  epochs?: number;
}

/** Trains the polarity/orientation head with the project's head trainer and fits the typicality reference; writes <out>/gate.json + weights. */
export async function buildGate(o: GateBuildOptions): Promise<GateModel> {
  const train = buildSamples(splitRows(o.labelsCsv, o.imagesDir, "train"));
  const valid = buildSamples(splitRows(o.labelsCsv, o.imagesDir, "valid"));
  const trainX = await sampleFeatures(o.trunk, train, o.cacheDir);
  const validX = await sampleFeatures(o.trunk, valid, o.cacheDir);
  const trainY = train.map(faultLabels);
  const validY = valid.map(faultLabels);
  const init: HeadWeights = { kernel: new Float32Array(GATE_FEATURES * FAULTS.length), bias: new Float32Array(FAULTS.length), inputs: GATE_FEATURES, outputs: FAULTS.length };
  const seed = o.seed ?? 15;
  const r = await trainHead(init, { copies: [trainX], labels: trainY }, { copies: [validX], labels: validY }, {
    epochs: o.epochs ?? 60, seed, patience: 10, learningRate: 1e-3, lossWeights: balancingWeights(computeClassFreqs(trainY)), progress: false,
  });
  // Typicality references: the layout thumbnails of the training images as they are and with each fault.
  const references = ["original", ...FAULTS] as const;
  const typicality = references.map((v) => featureScaling(trainX.filter((_, i) => train[i]!.variant === v).map((x) => x.slice(FEATURE_CHANNELS))));
  const validGood = valid.map((s, i) => ({ s, x: validX[i]! })).filter(({ s }) => s.variant === "original");
  const p = predictHead(r.best, validGood.map(({ x }) => x));
  const thresholds = {
    inverted: aboveGood(p.map((q) => q[FAULTS.indexOf("inverted")]!), 0.5),
    rotated: aboveGood(p.map((q) => Math.max(q[1]!, q[2]!, q[3]!)), 0.5),
    atypical: aboveGood(validGood.map(({ x }) => atypicality(x, typicality)), 0),
    method: "just above the highest score of the validation split's unaltered images (none of them fails), at least 0.5 for the head's probabilities",
  };
  const model = { head: r.best, typicality };
  const bytes = gateWeightsBytes(model);
  mkdirSync(o.out, { recursive: true });
  writeFileSync(join(o.out, "gate.f32"), bytes);
  const spec: GateSpec = {
    version: "1",
    trunk: o.trunkSpec,
    weights: { file: "gate.f32", sha256: createHash("sha256").update(bytes).digest("hex") },
    outputs: [...FAULTS],
    typicality: [...references],
    thresholds,
    built: {
      data: `${relative(process.cwd(), o.labelsCsv)}: train split (${train.length / 2} images, each unaltered and once with one of ${FAULTS.join("/")}) for the head (tfjs head trainer, seed ${seed}, best epoch ${r.bestEpoch}) and the typicality references (layout thumbnails of the train images as they are and with each fault); thresholds on the valid split (${valid.length / 2} images); trunk: ${relative(process.cwd(), DEMO_DIR)} seed ${o.trunkSpec.seed}`,
      createdAt: new Date().toISOString(),
      metrics: { validMeanAuroc: r.history.find((h) => h.epoch === r.bestEpoch)?.validMeanAuroc ?? r.initialValidMeanAuroc, bestEpoch: r.bestEpoch },
    },
  };
  writeFileSync(join(o.out, "gate.json"), `${JSON.stringify(spec, null, 2)}\n`);
  return { spec, ...model };
}
