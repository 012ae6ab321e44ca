/**
 * Heatmap colouring shared by the overlay and its legend. Pure functions (no DOM), so they are
 * unit-tested in Node and used unchanged in the browser.
 *
 * The layer follows what a DICOM Blending Softcopy Presentation State can express: one constant
 * opacity for the whole heatmap layer, with the heatmap's low values fully transparent (a
 * thresholded colour layer), rather than a per-pixel alpha ramp.
 */

/** Colour stops of the "jet"-like map radiology viewers use for saliency: blue (cool) → red (hot). */
export const HEAT_STOPS: readonly { at: number; rgb: [number, number, number] }[] = [
  { at: 0.0, rgb: [0, 0, 255] },
  { at: 0.25, rgb: [0, 255, 255] },
  { at: 0.5, rgb: [0, 255, 0] },
  { at: 0.75, rgb: [255, 255, 0] },
  { at: 1.0, rgb: [255, 0, 0] },
];

/** Heat in [0,1] below which the layer is transparent, unless the caller chooses another. */
export const DEFAULT_HEAT_THRESHOLD = 0.3;

/** RGB of a heat value in [0,1] (clamped), linearly interpolated between the stops. */
export function heatColor(v: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, v));
  for (let i = 1; i < HEAT_STOPS.length; i++) {
    const a = HEAT_STOPS[i - 1]!;
    const b = HEAT_STOPS[i]!;
    if (x <= b.at) {
      const t = (x - a.at) / (b.at - a.at);
      return [0, 1, 2].map((k) => Math.round(a.rgb[k]! + (b.rgb[k]! - a.rgb[k]!) * t)) as [number, number, number];
    }
  }
  return [...HEAT_STOPS[HEAT_STOPS.length - 1]!.rgb];
}

/** 256-entry RGBA lookup table for 8-bit heat: opaque colour at/above the threshold, transparent below. */
export function heatLut(threshold = DEFAULT_HEAT_THRESHOLD): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    const [r, g, b] = heatColor(v);
    lut.set([r, g, b, v >= threshold ? 255 : 0], i * 4);
  }
  return lut;
}

/**
 * Colours an 8-bit single-channel heatmap (row-major, one byte per pixel) into RGBA pixels
 * through `heatLut`. The layer's constant opacity is applied when it is composited.
 */
export function colorizeHeatmap(heat: Uint8Array | Uint8ClampedArray, threshold = DEFAULT_HEAT_THRESHOLD): Uint8ClampedArray<ArrayBuffer> {
  const lut = heatLut(threshold);
  const out = new Uint8ClampedArray(heat.length * 4);
  for (let i = 0; i < heat.length; i++) {
    const o = heat[i]! * 4;
    out[i * 4] = lut[o]!;
    out[i * 4 + 1] = lut[o + 1]!;
    out[i * 4 + 2] = lut[o + 2]!;
    out[i * 4 + 3] = lut[o + 3]!;
  }
  return out;
}
