import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import sharp from "sharp";
import { upsampleHeatmap, type Heatmap } from "../inference/classifier.ts";

/**
 * A heatmap for the worklist page: 8-bit grayscale PNG (0 = no activation, 255 = the map's
 * maximum of 1), upsampled bilinearly to the source image's size, or, when the source's longer side
 * exceeds `maxSize`, to the source's aspect ratio with that longer side.
 */
export async function writeHeatmapPng(h: Heatmap, source: { width: number; height: number }, maxSize: number, path: string): Promise<{ width: number; height: number }> {
  const scale = Math.min(1, maxSize / Math.max(source.width, source.height));
  const width = Math.max(1, Math.round(source.width * scale));
  const height = Math.max(1, Math.round(source.height * scale));
  const up = upsampleHeatmap(h, width, height);
  const gray = Buffer.alloc(width * height);
  for (let i = 0; i < gray.length; i++) gray[i] = Math.round(Math.min(1, Math.max(0, up[i]!)) * 255);
  mkdirSync(dirname(path), { recursive: true });
  await sharp(gray, { raw: { width, height, channels: 1 } }).png().toFile(path);
  return { width, height };
}
