import type { ClassifierHead } from "../model/head.ts";

/** One class activation map: [0,1] values at the feature-grid size, row-major. */
export interface Heatmap { label: string; width: number; height: number; data: Float32Array }

/** The dense head's weights by class: weights[k*channels + c] = W_kc (each class's row contiguous). */
export interface CamWeights { classes: number; channels: number; weights: Float32Array }

/** From the head as src/model/head.ts reads it from the ONNX ([channels][classes], Keras layout). */
export function camWeights(head: ClassifierHead): CamWeights {
  const { channels: C, classes: K, kernel } = head;
  const weights = new Float32Array(K * C);
  for (let c = 0; c < C; c++) for (let k = 0; k < K; k++) weights[k * C + c] = kernel[c * K + k]!;
  return { classes: K, channels: C, weights };
}

/** One image's final feature map. */
export interface FeatureMap {
  data: Float32Array;
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
export function classActivationMaps(fm: FeatureMap, head: CamWeights, labels: string[]): Heatmap[] {
  const { channels: C, height: H, width: W } = fm;
  if (C !== head.channels) throw new Error(`features have ${C} channels but the dense head reads ${head.channels}`);
  if (labels.length !== head.classes) throw new Error(`${labels.length} labels for a dense head with ${head.classes} classes`);
  const P = H * W;
  // Position-major (HWC) view of this image's map, so that each position's C values are contiguous and every
  // CAM value is one dot product accumulated in a register (NHWC needs no copy).
  let A: Float32Array;
  if (fm.layout === "NHWC") {
    A = fm.data.subarray(0, P * C);
  } else {
    A = new Float32Array(P * C);
    for (let c = 0; c < C; c++) {
      const base = c * P;
      for (let p = 0; p < P; p++) A[p * C + c] = fm.data[base + p]!;
    }
  }
  const cams = labels.map(() => new Float32Array(P));
  const maxima = new Float64Array(labels.length);
  for (let k = 0; k < labels.length; k++) {
    const wk = head.weights.subarray(k * C, (k + 1) * C);
    const cam = cams[k]!;
    let max = 0;
    for (let p = 0; p < P; p++) {
      const off = p * C;
      // Four partial sums: independent additions keep the CPU's floating-point pipeline full.
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, c = 0;
      for (; c + 3 < C; c += 4) {
        s0 += wk[c]! * A[off + c]!;
        s1 += wk[c + 1]! * A[off + c + 1]!;
        s2 += wk[c + 2]! * A[off + c + 2]!;
        s3 += wk[c + 3]! * A[off + c + 3]!;
      }
      for (; c < C; c++) s0 += wk[c]! * A[off + c]!;
      const sum = s0 + s1 + s2 + s3;
      const v = sum > 0 ? sum : 0;
      cam[p] = v;
      if (v > max) max = v;
    }
    maxima[k] = max;
  }
  return labels.map((label, k) => {
    const data = cams[k]!;
    const max = maxima[k]!;
    if (max > 0 && Number.isFinite(max)) for (let p = 0; p < P; p++) data[p] = data[p]! / max;
    else data.fill(0);
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
