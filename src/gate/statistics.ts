import type { PresentationImage } from "../image/presentation.ts";
import { resizeGray } from "../image/resize.ts";

/** What the gate (and drift monitoring) measures on a presentation image without a model. */
export interface ImageStatistics {
  width: number;
  height: number;
  mean: number;
  std: number;
  /** Distinct presentation values at 12-bit resolution (4096 bins over [0,1]). */
  greyLevels: number;
  /** Share of pixels in the darkest and brightest 1/64 of the range (burned-out or empty images). */
  clipped: number;
}

export function imageStatistics(img: PresentationImage): ImageStatistics {
  const { data } = img;
  const seen = new Uint8Array(4096);
  let sum = 0;
  let sq = 0;
  let clipped = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    sum += v;
    sq += v * v;
    seen[Math.min(4095, Math.max(0, Math.round(v * 4095)))] = 1;
    if (v < 1 / 64 || v > 63 / 64) clipped++;
  }
  const n = data.length || 1;
  const mean = sum / n;
  return { width: img.width, height: img.height, mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), greyLevels: seen.reduce((a, b) => a + b, 0), clipped: clipped / n };
}

/** Side of the layout thumbnail the gate's head sees beside the trunk features. */
export const LAYOUT_SIZE = 16;

/**
 * The image's brightness layout: a 16x16 thumbnail (the project's anti-aliased resize of the whole
 * image, aspect ignored). Polarity and orientation of a chest film are largely in where it is
 * bright (mediastinum, diaphragm, shoulders) — the thumbnail keeps that without a model.
 */
export function layoutFeatures(img: PresentationImage): Float32Array {
  return resizeGray(img.data, img.width, img.height, LAYOUT_SIZE, LAYOUT_SIZE);
}
