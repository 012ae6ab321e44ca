import { seededRandom } from "../model/rng.ts";

/**
 * Exact AUROC as the Mann–Whitney U statistic: the probability that a random positive scores above
 * a random negative, ties counting one half. Computed from mid-ranks, O(n log n).
 * Returns NaN when a class is absent (AUROC undefined).
 */
export function auroc(truth: ArrayLike<number>, score: ArrayLike<number>): number {
  const n = truth.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => score[a]! - score[b]!);
  let nPos = 0;
  let rankSumPos = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && score[idx[j + 1]!] === score[idx[i]!]) j++;
    const midRank = (i + j) / 2 + 1; // 1-based mid-rank of the tie group
    for (let t = i; t <= j; t++)
      if (truth[idx[t]!] === 1) {
        nPos++;
        rankSumPos += midRank;
      }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export interface BootstrapOptions {
  iterations?: number;
  seed?: number;
  level?: number;
}

/**
 * Percentile bootstrap CI of the AUROC: resample cases with replacement (seeded), skip resamples
 * with only one class, take the (1-level)/2 and (1+level)/2 quantiles (linear interpolation).
 */
export function bootstrapAurocCi(truth: ArrayLike<number>, score: ArrayLike<number>, opts: BootstrapOptions = {}): [number, number] {
  const { level = 0.95 } = opts;
  const stats = bootstrapAurocSamples(truth, score, opts);
  if (stats.length === 0) return [NaN, NaN];
  return [quantile(stats, (1 - level) / 2), quantile(stats, (1 + level) / 2)];
}

/** The sorted bootstrap AUROCs behind `bootstrapAurocCi` (resamples with one class only are skipped). */
export function bootstrapAurocSamples(truth: ArrayLike<number>, score: ArrayLike<number>, opts: BootstrapOptions = {}): number[] {
  const { iterations = 1000, seed = 1 } = opts;
  const n = truth.length;
  const rand = seededRandom(seed);
  const t = new Float64Array(n);
  const s = new Float64Array(n);
  const stats: number[] = [];
  for (let b = 0; b < iterations; b++) {
    for (let i = 0; i < n; i++) {
      const k = Math.floor(rand() * n);
      t[i] = truth[k]!;
      s[i] = score[k]!;
    }
    const a = auroc(t, s);
    if (!Number.isNaN(a)) stats.push(a);
  }
  return stats.sort((a, b) => a - b);
}

/** Quantile of sorted values with linear interpolation (numpy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface RocPoint {
  threshold: number;
  fpr: number;
  tpr: number;
}

/** ROC curve: one point per distinct score (predict positive when score >= threshold), from (0,0) to (1,1). */
export function rocCurve(truth: ArrayLike<number>, score: ArrayLike<number>): RocPoint[] {
  const n = truth.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => score[b]! - score[a]!);
  let nPos = 0;
  for (let i = 0; i < n; i++) nPos += truth[i] === 1 ? 1 : 0;
  const nNeg = n - nPos;
  const pts: RocPoint[] = [{ threshold: Infinity, fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < n; ) {
    const s = score[idx[i]!]!;
    while (i < n && score[idx[i]!] === s) {
      if (truth[idx[i]!] === 1) tp++;
      else fp++;
      i++;
    }
    pts.push({ threshold: s, fpr: nNeg ? fp / nNeg : 0, tpr: nPos ? tp / nPos : 0 });
  }
  return pts;
}

/** Operating point maximising Youden's J = TPR - FPR (sensitivity + specificity - 1). */
export function youdenThreshold(truth: ArrayLike<number>, score: ArrayLike<number>): { threshold: number; j: number; tpr: number; fpr: number } {
  let best = { threshold: 0.5, j: -Infinity, tpr: 0, fpr: 0 };
  for (const p of rocCurve(truth, score)) {
    if (!Number.isFinite(p.threshold)) continue;
    const j = p.tpr - p.fpr;
    if (j > best.j) best = { threshold: p.threshold, j, tpr: p.tpr, fpr: p.fpr };
  }
  return best;
}

export interface CalibrationBin {
  lo: number;
  hi: number;
  n: number;
  meanPredicted: number;
  observed: number;
}

/** Reliability diagram data: equal-width probability bins with mean prediction vs observed frequency. */
export function calibrationBins(truth: ArrayLike<number>, score: ArrayLike<number>, bins = 10): CalibrationBin[] {
  const out: CalibrationBin[] = Array.from({ length: bins }, (_, b) => ({ lo: b / bins, hi: (b + 1) / bins, n: 0, meanPredicted: 0, observed: 0 }));
  for (let i = 0; i < truth.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(score[i]! * bins)));
    const bin = out[b]!;
    bin.n++;
    bin.meanPredicted += score[i]!;
    bin.observed += truth[i]!;
  }
  for (const b of out)
    if (b.n) {
      b.meanPredicted /= b.n;
      b.observed /= b.n;
    }
  return out.filter((b) => b.n > 0);
}
