import { loadPresentationImage } from "../image/presentation.ts";
import { resizeGray } from "../image/resize.ts";
import type { InputSpec } from "../image/tensor.ts";
import { seededRandom, shuffled } from "../model/rng.ts";

/**
 * Normalisation statistics from a sample of the training set, as the seed does for its test
 * generator (ImageDataGenerator featurewise_center/std_normalization fitted on a 100-image sample
 * of the training data): mean and standard deviation of pixel values (in pixelScale units) at the
 * model's input size. The gray image feeds three identical channels, so the three entries are equal.
 * They go into the card's `input`, and inference then applies exactly the training preprocessing.
 */
export async function normalizationFromSample(paths: string[], size: number, opts: { sample?: number; seed?: number; pixelScale?: number } = {}): Promise<InputSpec> {
  const pixelScale = opts.pixelScale ?? 255;
  const chosen = shuffled(paths, seededRandom(opts.seed ?? 1)).slice(0, opts.sample ?? 100);
  if (chosen.length === 0) throw new Error("no training images to compute normalisation statistics from");
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (const p of chosen) {
    const img = await loadPresentationImage(p);
    const g = resizeGray(img.data, img.width, img.height, size, size);
    for (let i = 0; i < g.length; i++) {
      const v = g[i]! * pixelScale;
      sum += v;
      sumSq += v * v;
    }
    n += g.length;
  }
  const mean = sum / n;
  const std = Math.sqrt(Math.max(sumSq / n - mean * mean, 1e-12));
  const r = (x: number) => +x.toFixed(4);
  return { size, layout: "NCHW", pixelScale, mean: [r(mean), r(mean), r(mean)], std: [r(std), r(std), r(std)] };
}
