/**
 * Operating points of one label: sensitivity and specificity at a threshold (score >= threshold is
 * positive, as the pipeline judges it) with Wilson 95% intervals, and the threshold that reaches a
 * target sensitivity or specificity on labelled data.
 */
export interface OperatingPoint {
  threshold: number;
  sensitivity: number | null;
  specificity: number | null;
  sensitivityCi95: [number, number] | null;
  specificityCi95: [number, number] | null;
  tp: number;
  fn: number;
  tn: number;
  fp: number;
}

export interface Target {
  metric: "sensitivity" | "specificity";
  value: number;
}

/** Wilson score interval (95%) of k successes in n trials; null when n = 0. */
export function wilsonCi(k: number, n: number, z = 1.959964): [number, number] | null {
  if (n === 0) return null;
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

export function atThreshold(truth: ArrayLike<number>, score: ArrayLike<number>, threshold: number): OperatingPoint {
  let tp = 0, fn = 0, tn = 0, fp = 0;
  for (let i = 0; i < truth.length; i++) {
    const pos = score[i]! >= threshold;
    if (truth[i] === 1) pos ? tp++ : fn++;
    else pos ? fp++ : tn++;
  }
  return {
    threshold,
    sensitivity: tp + fn ? tp / (tp + fn) : null,
    specificity: tn + fp ? tn / (tn + fp) : null,
    sensitivityCi95: wilsonCi(tp, tp + fn),
    specificityCi95: wilsonCi(tn, tn + fp),
    tp, fn, tn, fp,
  };
}

/**
 * The highest threshold whose sensitivity reaches the target (fewest false positives for it), or
 * the lowest whose specificity does (most true positives for it). Thresholds are the data's own
 * scores. Undefined when the class the target is about is absent from the data.
 */
export function thresholdFor(truth: ArrayLike<number>, score: ArrayLike<number>, target: Target): OperatingPoint | undefined {
  const cls = target.metric === "sensitivity" ? 1 : 0;
  const own = Array.from(score).filter((_, i) => truth[i] === cls).sort((a, b) => b - a);
  if (own.length === 0) return undefined;
  if (target.metric === "sensitivity") {
    // the k-th highest positive score as threshold keeps the k highest positives: k/P >= target
    const k = Math.min(own.length, Math.max(1, Math.ceil(target.value * own.length - 1e-9)));
    return atThreshold(truth, score, own[k - 1]!);
  }
  // specificity: negatives strictly below the threshold are true negatives; need ceil(target*N) of them
  const asc = own.slice().reverse();
  const k = Math.min(asc.length, Math.ceil(target.value * asc.length - 1e-9));
  const t = k === 0 ? asc[0]! : k >= asc.length ? nextUp(asc[asc.length - 1]!) : nextUp(asc[k - 1]!);
  return atThreshold(truth, score, Math.min(1, t));
}

/** The smallest double above x, so "score >= t" excludes x itself. */
function nextUp(x: number): number {
  const b = new Float64Array([x]);
  const u = new BigInt64Array(b.buffer);
  u[0] = u[0]! + (x >= 0 ? 1n : -1n);
  return b[0]!;
}

export function parseTarget(spec: string): Target {
  const m = /^(sensitivity|specificity)\s*[=:]\s*(0?\.\d+|1(\.0+)?|0)$/.exec(spec.trim());
  if (!m) throw new Error(`target "${spec}": expected sensitivity=<0..1> or specificity=<0..1>, e.g. sensitivity=0.95`);
  return { metric: m[1] as Target["metric"], value: Number(m[2]) };
}
