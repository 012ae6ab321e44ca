import type { PresentationImage } from "../image/presentation.ts";

/**
 * The input faults the gate must catch, made from good images: the gate's training data and its
 * held-out figures, and the drift tests, all use these same functions.
 */
export type Fault = "inverted" | "rotated90" | "rotated180" | "rotated270";
export const FAULTS: readonly Fault[] = ["inverted", "rotated90", "rotated180", "rotated270"];

const named = (img: PresentationImage, what: string, data: Float32Array, width = img.width, height = img.height): PresentationImage => ({
  ...img,
  width,
  height,
  data,
  steps: { ...img.steps, inversion: `${img.steps.inversion}; ${what}` },
});

/** A negative: what a MONOCHROME1/2 mislabel shows. */
export function invert(img: PresentationImage): PresentationImage {
  return named(img, "inverted (gate fault)", img.data.map((v) => 1 - v));
}

/** Clockwise rotation by 90, 180 or 270 degrees. */
export function rotate(img: PresentationImage, degrees: 90 | 180 | 270): PresentationImage {
  const { width: w, height: h, data } = img;
  const out = new Float32Array(w * h);
  if (degrees === 180) {
    for (let i = 0; i < w * h; i++) out[i] = data[w * h - 1 - i]!;
    return named(img, "rotated 180 (gate fault)", out);
  }
  // 90 clockwise: output (x', y') of size h x w takes input (x = y', y = h - 1 - x'); 270 the mirror of that
  for (let y = 0; y < w; y++)
    for (let x = 0; x < h; x++) {
      const src = degrees === 90 ? (h - 1 - x) * w + y : x * w + (w - 1 - y);
      out[y * h + x] = data[src]!;
    }
  return named(img, `rotated ${degrees} (gate fault)`, out, h, w);
}

export function applyFault(img: PresentationImage, fault: Fault): PresentationImage {
  if (fault === "inverted") return invert(img);
  return rotate(img, fault === "rotated90" ? 90 : fault === "rotated180" ? 180 : 270);
}
