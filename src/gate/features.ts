import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PresentationImage } from "../image/presentation.ts";
import type { InputSpec } from "../image/tensor.ts";
import { FEATURE_CHANNELS, randomDenseNet121Weights } from "../model/densenet121.ts";
import { createTrunk, FeatureCache, trunkFeatures, type Trunk } from "../training/features.ts";
import { LAYOUT_SIZE, layoutFeatures } from "./statistics.ts";

/** One gate feature row: the trunk's 1024 pooled features, then the 16x16 layout thumbnail. */
export const GATE_FEATURES = FEATURE_CHANNELS + LAYOUT_SIZE * LAYOUT_SIZE;

/** The trunk the gate was built on: the demo model's seeded DenseNet121 initialisation and input spec. */
export interface GateTrunkSpec {
  init: "densenet121-random";
  seed: number;
  input: InputSpec;
}

export function openGateTrunk(spec: GateTrunkSpec, threads = 2): Promise<Trunk> {
  return createTrunk(randomDenseNet121Weights(spec.seed, 14), spec.input, threads);
}

export async function gateFeatures(trunk: Trunk, imgs: PresentationImage[]): Promise<Float32Array[]> {
  const rows = await trunkFeatures(trunk, imgs);
  return rows.map((r, i) => {
    const out = new Float32Array(GATE_FEATURES);
    out.set(r, 0);
    out.set(layoutFeatures(imgs[i]!), FEATURE_CHANNELS);
    return out;
  });
}

/**
 * Gate features of (image file, variant) pairs through a disk cache keyed by the file's bytes,
 * the trunk and the variant, so building and measuring the gate runs each trunk pass once.
 */
export async function cachedGateFeatures(
  trunk: Trunk,
  items: { path: string; variant: string; load: () => Promise<PresentationImage> }[],
  cacheDir: string,
  batch = 8,
): Promise<Float32Array[]> {
  const cache = new FeatureCache(join(cacheDir, `gate-${trunk.key.slice(0, 32)}`), GATE_FEATURES);
  const out = new Array<Float32Array>(items.length);
  const pending: { i: number; sha: string }[] = [];
  items.forEach((it, i) => {
    const sha = createHash("sha256").update(readFileSync(it.path)).digest("hex");
    const hit = cache.get(sha, it.variant);
    if (hit) out[i] = hit;
    else pending.push({ i, sha });
  });
  for (let s = 0; s < pending.length; s += batch) {
    const chunk = pending.slice(s, s + batch);
    const imgs = await Promise.all(chunk.map(({ i }) => items[i]!.load()));
    const rows = await gateFeatures(trunk, imgs);
    chunk.forEach(({ i, sha }, k) => {
      out[i] = rows[k]!;
      cache.put(sha, items[i]!.variant, rows[k]!);
    });
    if (process.stderr.isTTY || process.env.GATE_PROGRESS) process.stderr.write(`\rgate features ${Math.min(s + batch, pending.length)}/${pending.length}`);
  }
  if (pending.length && (process.stderr.isTTY || process.env.GATE_PROGRESS)) process.stderr.write("\n");
  return out;
}
