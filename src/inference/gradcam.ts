/** One class activation map: [0,1] values at the feature-grid size, row-major. */
export interface Heatmap { label: string; width: number; height: number; data: Float32Array }

/**
 * Exact GradCAM for features → GlobalAveragePool → Dense: the gradient of class k's logit with respect to
 * A_c(y,x) is W_kc / (H*W) at every position, so GradCAM's channel weights are W_kc / (H*W) and the map is
 * ReLU(sum_c W_kc A_c) / (H*W). The session computes ReLU(sum_c W_kc A_c) (see `withClassActivationMaps`);
 * here the constant vanishes in the normalisation: each map is divided by its maximum, so it spans [0,1].
 * A map with no positive value (no evidence for the class anywhere) is all zeros, not a division by zero.
 *
 * `raw`: one image's maps, [labels.length][height*width], already ReLU'd.
 */
export function normalizeActivationMaps(raw: Float32Array, labels: string[], height: number, width: number): Heatmap[] {
  const P = height * width;
  if (raw.length !== labels.length * P) throw new Error(`${raw.length} activation values for ${labels.length} maps of ${width}x${height}`);
  return labels.map((label, k) => {
    const data = raw.slice(k * P, (k + 1) * P);
    let max = 0;
    for (let p = 0; p < P; p++) if (data[p]! > max) max = data[p]!;
    if (max > 0 && Number.isFinite(max)) for (let p = 0; p < P; p++) data[p] = data[p]! > 0 ? data[p]! / max : 0;
    else data.fill(0);
    return { label, width, height, data };
  });
}

/**
 * Bilinear resize of a heatmap to the image size, pixel centres aligned (half-pixel convention, as
 * image resamplers do), edges clamped. Values stay in [0,1].
 */
export function upsampleHeatmap(h: Heatmap, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const sx = h.width / width, sy = h.height / height;
  const xs0 = new Int32Array(width), xs1 = new Int32Array(width), fx = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const gx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), h.width - 1);
    xs0[x] = Math.floor(gx); xs1[x] = Math.min(xs0[x]! + 1, h.width - 1); fx[x] = gx - xs0[x]!;
  }
  for (let y = 0; y < height; y++) {
    const gy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h.height - 1);
    const y0 = Math.floor(gy), y1 = Math.min(y0 + 1, h.height - 1), fy = gy - y0;
    const r0 = y0 * h.width, r1 = y1 * h.width, o = y * width;
    for (let x = 0; x < width; x++) {
      const a = h.data[r0 + xs0[x]!]!, b = h.data[r0 + xs1[x]!]!, c = h.data[r1 + xs0[x]!]!, d = h.data[r1 + xs1[x]!]!;
      const top = a + (b - a) * fx[x]!, bottom = c + (d - c) * fx[x]!;
      out[o + x] = top + (bottom - top) * fy;
    }
  }
  return out;
}
