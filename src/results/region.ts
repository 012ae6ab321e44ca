import { upsampleHeatmap, type Heatmap } from "../inference/classifier.ts";

/** Where a heatmap is hot, in the source image's pixel space (PS3.3 SCOORD convention: 0,0 = top left corner). */
export interface HeatRegion {
  /** Closed POLYLINE (first point repeated last): the box around the hot area, column/row pairs. */
  polyline: number[];
}

/** The working grid's longer side: the region is found at this resolution and scaled to the image. */
const WORK_SIZE = 512;
/** A pixel belongs to the hot area when its heat is at least this fraction of the peak. */
export const HOT_FRACTION = 0.5;

/**
 * The hot region of `heatmap` over an image of `width` x `height`: the 4-connected area around the
 * peak where the (bilinearly upsampled) heat is at least HOT_FRACTION of the peak, as its bounding
 * box. `undefined` when the heatmap is flat zero (no activation to show).
 */
export function hotRegion(heatmap: Heatmap, width: number, height: number): HeatRegion | undefined {
  const scale = Math.min(1, WORK_SIZE / Math.max(width, height));
  const ww = Math.max(1, Math.round(width * scale)), wh = Math.max(1, Math.round(height * scale));
  const heat = upsampleHeatmap(heatmap, ww, wh);
  let peakIndex = 0;
  for (let i = 1; i < heat.length; i++) if (heat[i]! > heat[peakIndex]!) peakIndex = i;
  const peakValue = heat[peakIndex]!;
  if (!(peakValue > 0)) return undefined;

  const limit = peakValue * HOT_FRACTION;
  const seen = new Uint8Array(heat.length);
  const stack = [peakIndex];
  seen[peakIndex] = 1;
  let x0 = ww, y0 = wh, x1 = -1, y1 = -1;
  while (stack.length) {
    const i = stack.pop()!;
    const x = i % ww, y = (i - x) / ww;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
    const visit = (j: number) => { if (!seen[j] && heat[j]! >= limit) { seen[j] = 1; stack.push(j); } };
    if (x > 0) visit(i - 1);
    if (x < ww - 1) visit(i + 1);
    if (y > 0) visit(i - ww);
    if (y < wh - 1) visit(i + ww);
  }
  const sx = width / ww, sy = height / wh;
  const left = x0 * sx, right = (x1 + 1) * sx, top = y0 * sy, bottom = (y1 + 1) * sy;
  return { polyline: [left, top, right, top, right, bottom, left, bottom, left, top] };
}
