import { describe, expect, it } from "vitest";
import { auroc, bootstrapAurocCi, bootstrapAurocSamples, calibrationBins, quantile, rocCurve, youdenThreshold } from "../../src/evaluation/auroc.ts";

/** Direct pairwise definition, the hand method: count positive-over-negative pairs, ties = 1/2. */
function pairwise(t: number[], s: number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < t.length; i++)
    for (let j = 0; j < t.length; j++)
      if (t[i] === 1 && t[j] === 0) {
        den++;
        num += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
      }
  return num / den;
}

describe("AUROC (exact, ties)", () => {
  it("matches values computed by hand", () => {
    // positives {0.9, 0.5, 0.1} vs negatives {0.9, 0.5}: pairs 0.5 + 1 + 0 + 0.5 + 0 + 0 = 2 of 6
    expect(auroc([1, 0, 1, 0, 1], [0.9, 0.9, 0.5, 0.5, 0.1])).toBeCloseTo(2 / 6, 12);
    // all tied: 1/2
    expect(auroc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3])).toBe(0.5);
    // perfect and inverted
    expect(auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])).toBe(1);
    expect(auroc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4])).toBe(0);
    // positives {0.8, 0.4}, negatives {0.4, 0.4, 0.2}: (1+1+1) + (0.5+0.5+1) = 5 of 6
    expect(auroc([1, 0, 1, 0, 0], [0.8, 0.4, 0.4, 0.4, 0.2])).toBeCloseTo(5 / 6, 12);
    expect(Number.isNaN(auroc([1, 1], [0.2, 0.3]))).toBe(true);
  });

  it("equals the pairwise definition on random vectors with many ties", () => {
    let x = 7;
    const r = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let k = 0; k < 20; k++) {
      const t = Array.from({ length: 40 }, () => (r() < 0.3 ? 1 : 0));
      const s = Array.from({ length: 40 }, () => Math.floor(r() * 5) / 5);
      if (!t.includes(1) || !t.includes(0)) continue;
      expect(auroc(t, s)).toBeCloseTo(pairwise(t, s), 12);
    }
  });
});

describe("bootstrap 95% CI", () => {
  it("uses numpy's linear-interpolated percentiles", () => {
    expect(quantile([1, 2, 3, 4], 0.025)).toBeCloseTo(1.075, 12);
    expect(quantile([1, 2, 3, 4], 0.975)).toBeCloseTo(3.925, 12);
  });

  it("resamples cases uniformly: AUROC distribution matches exact enumeration of all resamples", () => {
    // n = 4 cases → 4^4 = 256 equally likely resamples; enumerate them by hand-style brute force.
    const t = [1, 0, 1, 0];
    const s = [0.9, 0.5, 0.5, 0.1];
    const exact = new Map<number, number>();
    let valid = 0;
    for (let a = 0; a < 256; a++) {
      const ix = [a & 3, (a >> 2) & 3, (a >> 4) & 3, (a >> 6) & 3];
      const tt = ix.map((i) => t[i]!);
      if (!tt.includes(1) || !tt.includes(0)) continue;
      valid++;
      const v = Math.round(pairwise(tt, ix.map((i) => s[i]!)) * 1e9) / 1e9;
      exact.set(v, (exact.get(v) ?? 0) + 1);
    }
    const samples = bootstrapAurocSamples(t, s, { iterations: 20000, seed: 3 });
    for (const [v, count] of exact) {
      const observed = samples.filter((x) => Math.abs(x - v) < 1e-9).length / samples.length;
      expect(Math.abs(observed - count / valid)).toBeLessThan(0.015);
    }
    const ci = bootstrapAurocCi(t, s, { iterations: 20000, seed: 3 });
    expect(ci).toEqual([quantile(samples, 0.025), quantile(samples, 0.975)]);
    expect(ci[0]).toBeLessThanOrEqual(auroc(t, s));
    expect(ci[1]).toBeGreaterThanOrEqual(auroc(t, s));
  });

  it("is deterministic under a seed; perfect separation gives [1, 1]", () => {
    const t = [1, 0, 1, 0, 1, 0, 0, 1];
    const s = [0.7, 0.2, 0.4, 0.4, 0.9, 0.1, 0.6, 0.3];
    expect(bootstrapAurocCi(t, s, { seed: 5 })).toEqual(bootstrapAurocCi(t, s, { seed: 5 }));
    expect(bootstrapAurocCi([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], { seed: 2 })).toEqual([1, 1]);
  });
});

describe("ROC, Youden, calibration", () => {
  it("ROC points and Youden's J by hand", () => {
    const t = [1, 0, 1, 0, 1];
    const s = [0.9, 0.8, 0.7, 0.2, 0.1];
    expect(rocCurve(t, s).map((p) => [p.fpr, +p.tpr.toFixed(6)])).toEqual([
      [0, 0],
      [0, 0.333333],
      [0.5, 0.333333],
      [0.5, 0.666667],
      [1, 0.666667],
      [1, 1],
    ]);
    // J at 0.7 = 2/3 - 1/2 = 1/6; at 0.9 = 1/3 - 0 = 1/3 (best)
    const y = youdenThreshold(t, s);
    expect(y.threshold).toBe(0.9);
    expect(y.j).toBeCloseTo(1 / 3, 12);
  });

  it("calibration bins", () => {
    const bins = calibrationBins([1, 0, 1, 1], [0.05, 0.15, 0.95, 0.85], 2);
    expect(bins.map((b) => [b.lo, b.hi, b.n, +b.meanPredicted.toFixed(12), b.observed])).toEqual([
      [0, 0.5, 2, 0.1, 0.5],
      [0.5, 1, 2, 0.9, 1],
    ]);
  });
});
