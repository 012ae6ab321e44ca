/**
 * Distribution shift of one quantity between a reference sample and a recent window:
 * PSI (population stability index) over the reference's decile bins, and the two-sample
 * Kolmogorov–Smirnov statistic. Conventional reading of PSI: < 0.1 stable, 0.1–0.25 moderate,
 * > 0.25 shifted. On small samples PSI is biased upwards — about (bins - 1)(1/n + 1/m) with no
 * shift at all (0.27 for 79 reference values and a window of 57) — so an alert also needs the KS
 * test to reject equal distributions (ksCritical).
 */
export interface Shift {
  psi: number;
  ks: number;
  n: number;
}

/** Inner cut points of the reference's deciles (at most 9; ties collapse). */
export function decileEdges(reference: readonly number[]): number[] {
  const s = [...reference].sort((a, b) => a - b);
  const edges: number[] = [];
  for (let q = 1; q < 10; q++) {
    const v = s[Math.min(s.length - 1, Math.floor((q * s.length) / 10))]!;
    if (edges.length === 0 || v > edges[edges.length - 1]!) edges.push(v);
  }
  return edges;
}

function binShares(values: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) {
    let b = 0;
    while (b < edges.length && v >= edges[b]!) b++;
    counts[b]!++;
  }
  return counts.map((c) => c / Math.max(1, values.length));
}

/** PSI with each share floored at 1e-4, so an empty bin counts as very unlikely rather than infinite. */
export function psi(reference: readonly number[], recent: readonly number[], edges = decileEdges(reference)): number {
  const e = binShares(reference, edges);
  const a = binShares(recent, edges);
  let s = 0;
  for (let i = 0; i < e.length; i++) {
    const ei = Math.max(1e-4, e[i]!);
    const ai = Math.max(1e-4, a[i]!);
    s += (ai - ei) * Math.log(ai / ei);
  }
  return s;
}

export function ks(reference: readonly number[], recent: readonly number[]): number {
  const x = [...reference].sort((a, b) => a - b);
  const y = [...recent].sort((a, b) => a - b);
  let i = 0, j = 0, d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i]! <= v) i++;
    while (j < y.length && y[j]! <= v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

/**
 * The two-sample KS statistic above which the samples differ at level alpha (asymptotic:
 * c(alpha) * sqrt((n + m) / (n m)), c = sqrt(-ln(alpha / 2) / 2)).
 */
export function ksCritical(n: number, m: number, alpha: number): number {
  return Math.sqrt(-Math.log(alpha / 2) / 2) * Math.sqrt((n + m) / (n * m));
}

export function shift(reference: readonly number[], recent: readonly number[]): Shift {
  return { psi: psi(reference, recent), ks: ks(reference, recent), n: recent.length };
}
