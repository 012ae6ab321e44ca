import type { ClassifierHead } from "./onnx-graph.ts";

/** One class activation map: [0,1] values at the feature-grid size, row-major. */
export interface Heatmap { label: string; width: number; height: number; data: Float32Array }

/** Where one image's feature map lies in a (batched) features output. */
export interface FeatureMap {
  data: Float32Array;
  /** Element offset of this image in `data`. */
  offset: number;
  layout: "NCHW" | "NHWC";
  channels: number;
  height: number;
  width: number;
}

/**
 * Exact GradCAM for features → GlobalAveragePool → Dense: the gradient of class k's logit with respect to
 * A_c(y,x) is W_kc / (H*W) at every position, so GradCAM's channel weights are W_kc / (H*W) and the map is
 * ReLU(sum_c W_kc A_c) / (H*W). The constant 1/(H*W) vanishes in the normalisation: each map is divided
 * by its maximum, so it spans [0,1]. A map with no positive value (no evidence for the class anywhere)
 * is all zeros, not a division by zero.
 */
export function classActivationMaps(fm: FeatureMap, head: ClassifierHead, labels: string[]): Heatmap[] {
  const { channels: C, height: H, width: W } = fm;
  if (C !== head.channels) throw new Error(`features have ${C} channels but the dense head reads ${head.channels}`);
  if (labels.length !== head.classes) throw new Error(`${labels.length} labels for a dense head with ${head.classes} classes`);
  const P = H * W;
  // Channel-major copy of this image's map (one pass), so the inner loop below is contiguous.
  let A: Float32Array;
  if (fm.layout === "NCHW") {
    A = fm.data.subarray(fm.offset, fm.offset + C * P);
  } else {
    A = new Float32Array(C * P);
    for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) A[c * P + p] = fm.data[fm.offset + p * C + c]!;
  }
  return labels.map((label, k) => {
    const cam = new Float64Array(P);
    const wk = head.weights.subarray(k * C, (k + 1) * C);
    for (let c = 0; c < C; c++) {
      const w = wk[c]!;
      if (w === 0) continue;
      const base = c * P;
      for (let p = 0; p < P; p++) cam[p]! += w * A[base + p]!;
    }
    let max = 0;
    for (let p = 0; p < P; p++) if (cam[p]! > max) max = cam[p]!;
    const data = new Float32Array(P);
    if (max > 0 && Number.isFinite(max)) for (let p = 0; p < P; p++) data[p] = cam[p]! > 0 ? cam[p]! / max : 0;
    return { label, width: W, height: H, data };
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
