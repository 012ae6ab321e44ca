import { createHash } from "node:crypto";
import type { PresentationImage } from "../image/presentation.ts";
import { seededRandom } from "../model/rng.ts";

/**
 * Augmentations the seed mentions for its ImageDataGenerator. Each augmented copy is a fixed draw
 * (seeded by seed, image hash and copy index) so its trunk features can be cached like the original's.
 *
 * Horizontal flip is OFF by default: a chest radiograph is not left/right symmetric — the heart,
 * aortic knob and gastric bubble sit on the left, and "Cardiomegaly" or a right-sided effusion are
 * partly defined by side. A flipped film is a situs inversus patient, not a plausible training
 * example, and it teaches the model to ignore laterality.
 */
export interface Augmentation {
  /** Augmented copies per training image (features of each are cached); 0 disables augmentation. */
  copies: number;
  /** Max translation as a fraction of width/height (uniform in ±). */
  shift: number;
  /** Max zoom change (scale uniform in 1±zoom). */
  zoom: number;
  /** Max rotation in degrees (uniform in ±). */
  rotate: number;
  /** Max brightness/contrast change (gain 1±contrast, offset ±brightness in presentation units). */
  contrast: number;
  brightness: number;
  horizontalFlip: boolean;
}

export const DEFAULT_AUGMENTATION: Augmentation = { copies: 0, shift: 0.05, zoom: 0.1, rotate: 5, contrast: 0.1, brightness: 0.05, horizontalFlip: false };

export function augmentationKey(a: Augmentation, seed: number, imageSha: string, copy: number): string {
  const { copies: _copies, ...transform } = a;
  return createHash("sha256").update(JSON.stringify({ transform, seed, imageSha, copy })).digest("hex").slice(0, 16);
}

/** One seeded random affine + intensity transform, bilinear resampling, edges clamped. */
export function applyAugmentation(img: PresentationImage, a: Augmentation, seed: number, imageSha: string, copy: number): PresentationImage {
  const rand = seededRandom(parseInt(augmentationKey(a, seed, imageSha, copy).slice(0, 8), 16));
  const u = () => rand() * 2 - 1;
  const dx = u() * a.shift * img.width;
  const dy = u() * a.shift * img.height;
  const scale = 1 + u() * a.zoom;
  const theta = (u() * a.rotate * Math.PI) / 180;
  const gain = 1 + u() * a.contrast;
  const offset = u() * a.brightness;
  const flip = a.horizontalFlip && rand() < 0.5;
  const { width: w, height: h, data } = img;
  const cx = (w - 1) / 2;
  const cy = (h - 1) / 2;
  const cos = Math.cos(theta) / scale;
  const sin = Math.sin(theta) / scale;
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      // inverse map: output pixel → source position
      const ox = (flip ? w - 1 - x : x) - cx - dx;
      const oy = y - cy - dy;
      let sx = cos * ox + sin * oy + cx;
      let sy = -sin * ox + cos * oy + cy;
      sx = Math.min(w - 1, Math.max(0, sx));
      sy = Math.min(h - 1, Math.max(0, sy));
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const x1 = Math.min(w - 1, x0 + 1);
      const y1 = Math.min(h - 1, y0 + 1);
      const fx = sx - x0;
      const fy = sy - y0;
      const v =
        data[y0 * w + x0]! * (1 - fx) * (1 - fy) + data[y0 * w + x1]! * fx * (1 - fy) + data[y1 * w + x0]! * (1 - fx) * fy + data[y1 * w + x1]! * fx * fy;
      out[y * w + x] = Math.min(1, Math.max(0, (v - 0.5) * gain + 0.5 + offset));
    }
  return { ...img, data: out, steps: { ...img.steps, modality: `${img.steps.modality}; augmented copy ${copy}` } };
}
