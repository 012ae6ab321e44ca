/**
 * Anti-aliased resampling in float32: separable Lanczos-3 whose support is widened by the
 * reduction factor when shrinking (as PIL's and libvips' reducers do), so every source pixel
 * contributes and no aliasing appears; weights are normalized per output pixel. Results are
 * clamped to [0,1] since the kernel's small overshoot would leave the presentation range.
 */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  maxTaps: number;
}

const cache = new Map<string, Taps>();

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

function taps(src: number, dst: number): Taps {
  const key = `${src}>${dst}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const scale = src / dst;
  const stretch = Math.max(1, scale);
  const support = 3 * stretch;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(dst);
  const count = new Int32Array(dst);
  const weights = new Float32Array(dst * maxTaps);
  for (let o = 0; o < dst; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support));
    const hi = Math.min(src, Math.ceil(center + support));
    let sum = 0;
    const w: number[] = [];
    for (let i = lo; i < hi; i++) {
      const v = lanczos3((i + 0.5 - center) / stretch);
      w.push(v);
      sum += v;
    }
    start[o] = lo;
    count[o] = w.length;
    for (let k = 0; k < w.length; k++) weights[o * maxTaps + k] = w[k]! / sum;
  }
  const t = { start, count, weights, maxTaps };
  cache.set(key, t);
  return t;
}

/** Resizes a row-major single-channel float image. */
export function resizeGray(data: Float32Array, width: number, height: number, outWidth: number, outHeight: number): Float32Array {
  if (width === outWidth && height === outHeight) return data.slice();
  const { start: xStart, count: xCount, weights: xWeights, maxTaps: xMax } = taps(width, outWidth);
  const { start: yStart, count: yCount, weights: yWeights, maxTaps: yMax } = taps(height, outHeight);
  // horizontal pass: height x outWidth
  const tmp = new Float32Array(height * outWidth);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    const orow = y * outWidth;
    for (let o = 0; o < outWidth; o++) {
      const s = row + xStart[o]!;
      const wb = o * xMax;
      const n = xCount[o]!;
      let acc = 0;
      for (let k = 0; k < n; k++) acc += data[s + k]! * xWeights[wb + k]!;
      tmp[orow + o] = acc;
    }
  }
  // vertical pass, accumulating whole rows for memory locality
  const out = new Float32Array(outHeight * outWidth);
  const acc = new Float64Array(outWidth);
  for (let o = 0; o < outHeight; o++) {
    acc.fill(0);
    const wb = o * yMax;
    const n = yCount[o]!;
    for (let k = 0; k < n; k++) {
      const w = yWeights[wb + k]!;
      const srow = (yStart[o]! + k) * outWidth;
      for (let x = 0; x < outWidth; x++) acc[x]! += w * tmp[srow + x]!;
    }
    const orow = o * outWidth;
    for (let x = 0; x < outWidth; x++) {
      const v = acc[x]!;
      out[orow + x] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return out;
}
