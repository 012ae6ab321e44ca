import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PresentationImage } from "../image/presentation.ts";
import type { Trunk } from "../training/features.ts";
import { predictHead, type HeadWeights } from "../training/head-trainer.ts";
import { FEATURE_CHANNELS } from "../model/densenet121.ts";
import { GATE_FEATURES, gateFeatures, openGateTrunk, type GateTrunkSpec } from "./features.ts";
import { imageStatistics, LAYOUT_SIZE, type ImageStatistics } from "./statistics.ts";
import type { Fault } from "./transforms.ts";

/**
 * The image-content gate: before inference, the presentation image the model will see is checked
 * for what makes its findings meaningless — too small, too few grey levels, blank, inverted
 * polarity, rotated, not a chest radiograph. Statistics need no model; polarity and orientation
 * come from a small head on the demo trunk's features plus a layout thumbnail; "not a chest
 * radiograph" is how far the layout thumbnail lies from every reference the gate was built on
 * (chest films as they are, inverted, and rotated by 90/180/270°), so a faulty chest film is
 * reported by its fault, and an image like none of them as not a chest radiograph.
 */
export const GATE_DIR = fileURLToPath(new URL("../../models/gate", import.meta.url));
const SPEC_FILE = "gate.json";
const LAYOUT_FEATURES = LAYOUT_SIZE * LAYOUT_SIZE;

export type GateCheck = "too small" | "too few grey levels" | "blank" | "inverted" | "rotated" | "not a chest radiograph";

export interface GateSpec {
  version: string;
  trunk: GateTrunkSpec;
  /**
   * float32 file: head kernel [inputs x outputs], head bias [outputs], then per typicality reference
   * (`typicality` order) the mean and std of the layout thumbnail [LAYOUT_SIZE² each].
   */
  weights: { file: string; sha256: string };
  /** Head outputs, in order. */
  outputs: Fault[];
  /** The typicality references, in file order. */
  typicality: ("original" | Fault)[];
  /** Operating points chosen on the validation split (how: `method`). */
  thresholds: { inverted: number; rotated: number; atypical: number; method: string };
  built: { data: string; createdAt: string; metrics?: Record<string, unknown> };
}

export interface GateLimits {
  /** Shorter side in pixels below which an image is "too small". */
  minSize: number;
  /** Distinct presentation values (12-bit bins) below which an image has "too few grey levels". */
  minGreyLevels: number;
  /** Standard deviation of presentation values below which an image is "blank". */
  minStd: number;
}
export const DEFAULT_GATE_LIMITS: GateLimits = { minSize: 256, minGreyLevels: 32, minStd: 0.02 };

export interface GateScores {
  inverted: number;
  rotated: number;
  /** Which rotation scored highest (clockwise degrees). */
  rotation: 90 | 180 | 270;
  /** Mean log(1 + z²) of the layout thumbnail against the nearest typicality reference. */
  atypical: number;
}

export interface GateOutcome {
  pass: boolean;
  /** The first check that failed. */
  check?: GateCheck;
  /** "inverted polarity (score 0.97 ≥ 0.50)" — what the worklist shows after "not analysed: ". */
  reason?: string;
  statistics: ImageStatistics;
  /** Absent when a statistics check already failed (the model part is not run). */
  scores?: GateScores;
}

export interface GateModel {
  spec: GateSpec;
  head: HeadWeights;
  typicality: LayoutReference[];
}

export interface LayoutReference {
  mean: Float32Array;
  std: Float32Array;
}

export function readGateModel(dir = GATE_DIR): GateModel {
  const specPath = join(dir, SPEC_FILE);
  let spec: GateSpec;
  try {
    spec = JSON.parse(readFileSync(specPath, "utf8")) as GateSpec;
  } catch (err) {
    throw new Error(`${specPath}: cannot read the gate's spec (${(err as Error).message})`);
  }
  const path = join(dir, spec.weights.file);
  const bytes = readFileSync(path);
  const sha = createHash("sha256").update(bytes).digest("hex");
  if (sha !== spec.weights.sha256) throw new Error(`${path}: SHA-256 ${sha} is not the recorded ${spec.weights.sha256}`);
  const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const n = GATE_FEATURES;
  const k = spec.outputs.length;
  const l = LAYOUT_FEATURES;
  const expected = n * k + k + spec.typicality.length * 2 * l;
  if (f.length !== expected) throw new Error(`${path}: ${f.length} floats, expected ${expected}`);
  const at = n * k + k;
  return {
    spec,
    head: { kernel: f.slice(0, n * k), bias: f.slice(n * k, at), inputs: n, outputs: k },
    typicality: spec.typicality.map((_, r) => ({ mean: f.slice(at + 2 * r * l, at + (2 * r + 1) * l), std: f.slice(at + (2 * r + 1) * l, at + (2 * r + 2) * l) })),
  };
}

export function gateWeightsBytes(m: Omit<GateModel, "spec">): Uint8Array {
  const parts = [m.head.kernel, m.head.bias, ...m.typicality.flatMap((r) => [r.mean, r.std])];
  const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return new Uint8Array(all.buffer);
}

/**
 * How unlike a gate feature row's layout thumbnail is to the nearest reference: mean log(1 + z²)
 * per pixel (diagonal Gaussian; the log keeps one extreme pixel from dominating).
 */
export function atypicality(row: Float32Array, refs: LayoutReference[]): number {
  let best = Infinity;
  for (const ref of refs) {
    let s = 0;
    for (let i = 0; i < LAYOUT_FEATURES; i++) s += Math.log1p(((row[FEATURE_CHANNELS + i]! - ref.mean[i]!) / ref.std[i]!) ** 2);
    best = Math.min(best, s / LAYOUT_FEATURES);
  }
  return best;
}

/** Scores of feature rows by a gate model (shared by the service and the gate's own measurement). */
export function scoreGateFeatures(m: GateModel, rows: Float32Array[]): GateScores[] {
  const probs = predictHead(m.head, rows);
  return rows.map((row, i) => {
    const p = probs[i]!;
    const at = (f: Fault) => p[m.spec.outputs.indexOf(f)] ?? 0;
    const rotations = [[90, at("rotated90")], [180, at("rotated180")], [270, at("rotated270")]] as const;
    const best = [...rotations].sort((a, b) => b[1] - a[1])[0]!;
    return { inverted: at("inverted"), rotated: best[1], rotation: best[0], atypical: atypicality(row, m.typicality) };
  });
}

const fmt = (x: number) => x.toFixed(2);

/** The first failed check of an image, in the order cheap → model; statistics checks skip the model. */
export function judgeStatistics(s: ImageStatistics, limits: GateLimits): Pick<GateOutcome, "check" | "reason"> | undefined {
  if (Math.min(s.width, s.height) < limits.minSize) return { check: "too small", reason: `too small (${s.width}x${s.height} < ${limits.minSize} px)` };
  if (s.std < limits.minStd) return { check: "blank", reason: `blank or near-constant image (std ${s.std.toFixed(3)} < ${limits.minStd})` };
  if (s.greyLevels < limits.minGreyLevels) return { check: "too few grey levels", reason: `too few grey levels (${s.greyLevels} < ${limits.minGreyLevels})` };
  return undefined;
}

export function judgeScores(sc: GateScores, t: GateSpec["thresholds"]): Pick<GateOutcome, "check" | "reason"> | undefined {
  if (sc.atypical >= t.atypical) return { check: "not a chest radiograph", reason: `not a chest radiograph like those the model was built for (atypicality ${fmt(sc.atypical)} ≥ ${fmt(t.atypical)})` };
  if (sc.inverted >= t.inverted) return { check: "inverted", reason: `inverted polarity (score ${fmt(sc.inverted)} ≥ ${fmt(t.inverted)})` };
  if (sc.rotated >= t.rotated) return { check: "rotated", reason: `rotated by ${sc.rotation}° (score ${fmt(sc.rotated)} ≥ ${fmt(t.rotated)})` };
  return undefined;
}

/** The gate the pipeline calls: one per service, its own trunk session (the gate does not depend on the served model). */
export class ImageGate {
  private constructor(readonly model: GateModel, private readonly trunk: Trunk, readonly limits: GateLimits) {}

  static async load(dir = GATE_DIR, limits: GateLimits = DEFAULT_GATE_LIMITS, threads = 2): Promise<ImageGate> {
    const model = readGateModel(dir);
    return new ImageGate(model, await openGateTrunk(model.spec.trunk, threads), limits);
  }

  async check(img: PresentationImage): Promise<GateOutcome> {
    const statistics = imageStatistics(img);
    const bad = judgeStatistics(statistics, this.limits);
    if (bad) return { pass: false, ...bad, statistics };
    const [scores] = scoreGateFeatures(this.model, await gateFeatures(this.trunk, [img]));
    const failed = judgeScores(scores!, this.model.spec.thresholds);
    return failed ? { pass: false, ...failed, statistics, scores } : { pass: true, statistics, scores };
  }

  close(): Promise<void> {
    return this.trunk.close();
  }
}

