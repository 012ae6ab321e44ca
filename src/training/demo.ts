import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MODEL_FILE, readModelCard, type ModelCard } from "../model/card.ts";
import { FEATURE_CHANNELS, randomDenseNet121Weights, trunkWeights } from "../model/densenet121.ts";
import { readModelWeights, saveDenseNet121Dir } from "../model/model-dir.ts";
import { headFromWeights, withHead } from "./head-weights.ts";

/**
 * The demo model without a 30 MB file in git: its trunk is the seeded random initialisation
 * (`cxr model init --seed S`), so `models/demo/` holds only the seed, the trained head (57 KB) and the
 * card; `cxr model demo --out <dir>` rebuilds the identical ONNX (checked against the recorded
 * weights SHA-256, hence the same Device UID).
 */
export const DEMO_DIR = fileURLToPath(new URL("../../models/demo", import.meta.url));
const SPEC_FILE = "demo.json";
const HEAD_FILE = "head.f32";

export interface DemoSpec {
  trunk: { init: "densenet121-random"; seed: number };
  head: { file: string; sha256: string; kernel: [number, number]; bias: [number] };
  /** The card of the trained model (weightsSha256/deviceUid are what the rebuild must reproduce). */
  card: ModelCard;
}

/** `cxr model demo --out <dir>`: rebuilds model.onnx + model-card.json from models/demo. */
export function buildDemoModel(out: string, demoDir = DEMO_DIR): ModelCard {
  const specPath = join(demoDir, SPEC_FILE);
  let spec: DemoSpec;
  try {
    spec = JSON.parse(readFileSync(specPath, "utf8")) as DemoSpec;
  } catch (err) {
    throw new Error(`${specPath}: cannot read the demo model's spec (${(err as Error).message})`);
  }
  const bytes = readFileSync(join(demoDir, spec.head.file));
  const sha = createHash("sha256").update(bytes).digest("hex");
  if (sha !== spec.head.sha256) throw new Error(`${join(demoDir, spec.head.file)}: SHA-256 ${sha} is not the recorded ${spec.head.sha256}`);
  const [inputs, outputs] = spec.head.kernel;
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  if (floats.length !== inputs * outputs + outputs) throw new Error(`${join(demoDir, spec.head.file)}: ${floats.length} floats, expected ${inputs * outputs + outputs}`);
  const head = { kernel: floats.slice(0, inputs * outputs), bias: floats.slice(inputs * outputs), inputs, outputs };
  const weights = withHead(randomDenseNet121Weights(spec.trunk.seed, outputs), head);
  const { card } = spec;
  const built = saveDenseNet121Dir(
    out,
    { inputSize: card.input.size, weights },
    { name: card.name, version: card.version, manufacturer: card.manufacturer, labels: card.labels, input: card.input, training: card.training, now: new Date(card.createdAt) },
  );
  if (built.weightsSha256 !== card.weightsSha256) {
    throw new Error(`rebuilt demo weights SHA-256 ${built.weightsSha256} differ from the trained model's ${card.weightsSha256} (the seeded initialisation changed?)`);
  }
  return built;
}

/**
 * Packs a model trained from `cxr model init --seed <seed>` into models/demo: verifies the trunk is
 * exactly that seeded initialisation, then writes the head and the card.
 */
export function packDemoModel(trainedDir: string, seed: number, demoDir = DEMO_DIR): DemoSpec {
  const card = readModelCard(trainedDir);
  const weights = readModelWeights(join(trainedDir, MODEL_FILE));
  const init = trunkWeights(randomDenseNet121Weights(seed, card.labels.length));
  for (const [name, w] of trunkWeights(weights)) {
    const ref = init.get(name);
    if (!ref || ref.data.length !== w.data.length || !ref.data.every((v, i) => v === w.data[i])) {
      throw new Error(`${trainedDir}: trunk weight ${name} is not the seed-${seed} random initialisation; cannot pack as a seed + head demo`);
    }
  }
  const head = headFromWeights(weights, card.labels.length);
  const bytes = new Uint8Array(head.kernel.length * 4 + head.bias.length * 4);
  const f = new Float32Array(bytes.buffer);
  f.set(head.kernel, 0);
  f.set(head.bias, head.kernel.length);
  mkdirSync(demoDir, { recursive: true });
  writeFileSync(join(demoDir, HEAD_FILE), bytes);
  const spec: DemoSpec = {
    trunk: { init: "densenet121-random", seed },
    head: { file: HEAD_FILE, sha256: createHash("sha256").update(bytes).digest("hex"), kernel: [FEATURE_CHANNELS, card.labels.length], bias: [card.labels.length] },
    card,
  };
  writeFileSync(join(demoDir, SPEC_FILE), JSON.stringify(spec, null, 2) + "\n");
  return spec;
}

export function hasDemoModel(demoDir = DEMO_DIR): boolean {
  return existsSync(join(demoDir, SPEC_FILE));
}
