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
  /** Absent for a categorical quantity (KS needs an order). */
  ks?: number;
  /** Categorical quantities: p-value of the chi-square test of equal category shares. */
  pValue?: number;
  n: number;
  /** The bins PSI was computed over, with both samples' shares: what the drift page plots. */
  bins: { labels: string[]; reference: number[]; recent: number[] };
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
  return psiOfShares(binShares(reference, edges), binShares(recent, edges));
}

function psiOfShares(e: readonly number[], a: readonly number[]): number {
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

function binLabels(edges: readonly number[]): string[] {
  const f = (v: number) => Number(v.toPrecision(3)).toString();
  if (edges.length === 0) return ["all"];
  return [`< ${f(edges[0]!)}`, ...edges.slice(1).map((e, i) => `${f(edges[i]!)}–${f(e)}`), `≥ ${f(edges[edges.length - 1]!)}`];
}

/** A numeric quantity: PSI over the reference's decile bins, and KS. */
export function shift(reference: readonly number[], recent: readonly number[]): Shift {
  const edges = decileEdges(reference);
  const e = binShares(reference, edges);
  const a = binShares(recent, edges);
  return { psi: psiOfShares(e, a), ks: ks(reference, recent), n: recent.length, bins: { labels: binLabels(edges), reference: e, recent: a } };
}

function categoryShares(values: readonly string[], categories: readonly string[]): number[] {
  return categories.map((c) => values.filter((v) => v === c).length / Math.max(1, values.length));
}

/**
 * A categorical quantity (manufacturer, modality, gate outcome): PSI over the categories either
 * sample has, and the chi-square test of equal shares. A category the reference never saw makes PSI
 * large through the 1e-4 floor (2 gate failures in 60 studies against none in 79 gave 0.28), so an
 * alert also needs the test to reject, as KS does for numeric quantities.
 */
export function categoricalShift(reference: readonly string[], recent: readonly string[]): Shift {
  const labels = [...new Set([...reference, ...recent])].sort();
  const e = categoryShares(reference, labels);
  const a = categoryShares(recent, labels);
  return { psi: psiOfShares(e, a), pValue: chiSquarePValue(e, reference.length, a, recent.length), n: recent.length, bins: { labels, reference: e, recent: a } };
}

/** Chi-square test of homogeneity on the 2 × k table of the two samples' category counts. */
export function chiSquarePValue(e: readonly number[], n: number, a: readonly number[], m: number): number {
  if (!n || !m || e.length < 2) return 1;
  let x2 = 0;
  for (let i = 0; i < e.length; i++) {
    const total = e[i]! * n + a[i]! * m;
    const expectN = (total * n) / (n + m);
    const expectM = (total * m) / (n + m);
    x2 += (e[i]! * n - expectN) ** 2 / expectN + (a[i]! * m - expectM) ** 2 / expectM;
  }
  return gammaQ((e.length - 1) / 2, x2 / 2);
}

/** ln Γ(z) (Lanczos, g = 7). */
function lnGamma(z: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  let x = c[0]!;
  for (let i = 1; i < 9; i++) x += c[i]! / (z - 1 + i);
  const t = z - 1 + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z - 0.5) * Math.log(t) - t + Math.log(x);
}

/** Regularized upper incomplete gamma Q(a, x): the series below a + 1, the continued fraction above (Numerical Recipes 6.2). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let sum = 1 / a, term = 1 / a;
    for (let k = 1; k < 500 && Math.abs(term) > Math.abs(sum) * 1e-15; k++) sum += (term *= x / (a + k));
    return Math.max(0, 1 - sum * front);
  }
  let b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    d = Math.abs(d) < 1e-300 ? 1e-300 : d;
    c = b + an / c;
    c = Math.abs(c) < 1e-300 ? 1e-300 : c;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.min(1, front * h);
}
