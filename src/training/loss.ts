import * as tf from "@tensorflow/tfjs-core";

/**
 * The seed's class-imbalance handling (AI for Medicine, course 1 week 1): positive/negative
 * frequencies per class, weights w_pos = freq_neg and w_neg = freq_pos so that both classes
 * contribute equally to the loss, and the weighted loss
 *   L = sum_j mean_i -( w_pos[j] * y_ij * log(p_ij + eps) + w_neg[j] * (1 - y_ij) * log(1 - p_ij + eps) ).
 */
export interface ClassFreqs {
  positive: number[];
  negative: number[];
}

export function computeClassFreqs(labels: readonly (readonly number[])[]): ClassFreqs {
  const n = labels.length;
  if (n === 0) throw new Error("computeClassFreqs: no rows");
  const k = labels[0]!.length;
  const positive = new Array<number>(k).fill(0);
  for (const row of labels) for (let j = 0; j < k; j++) positive[j]! += row[j]!;
  for (let j = 0; j < k; j++) positive[j] = positive[j]! / n;
  return { positive, negative: positive.map((p) => 1 - p) };
}

export interface LossWeights {
  pos: number[];
  neg: number[];
}

export function balancingWeights(freqs: ClassFreqs): LossWeights {
  return { pos: freqs.negative.slice(), neg: freqs.positive.slice() };
}

/** The seed's `weighted_loss(y_true, y_pred)` on plain arrays (rows x classes). */
export function weightedLoss(yTrue: readonly (readonly number[])[], yPred: readonly (readonly number[])[], w: LossWeights, epsilon = 1e-7): number {
  const n = yTrue.length;
  const k = w.pos.length;
  let loss = 0;
  for (let j = 0; j < k; j++) {
    let pos = 0;
    let neg = 0;
    for (let i = 0; i < n; i++) {
      const y = yTrue[i]![j]!;
      const p = yPred[i]![j]!;
      pos += w.pos[j]! * y * Math.log(p + epsilon);
      neg += w.neg[j]! * (1 - y) * Math.log(1 - p + epsilon);
    }
    loss += -(pos / n + neg / n);
  }
  return loss;
}

/** The same loss as a tfjs op, for autodiff: yTrue and yPred are [n, k]. */
export function weightedLossTensor(yTrue: tf.Tensor2D, yPred: tf.Tensor2D, w: LossWeights, epsilon = 1e-7): tf.Scalar {
  return tf.tidy(() => {
    const wPos = tf.tensor1d(w.pos);
    const wNeg = tf.tensor1d(w.neg);
    const pos = tf.mul(tf.mul(wPos, yTrue), tf.log(tf.add(yPred, epsilon)));
    const neg = tf.mul(tf.mul(wNeg, tf.sub(1, yTrue)), tf.log(tf.add(tf.sub(1, yPred), epsilon)));
    // mean over rows of each term, then sum over classes: exactly the seed's K.mean per class.
    return tf.neg(tf.sum(tf.add(tf.mean(pos, 0), tf.mean(neg, 0)))) as tf.Scalar;
  });
}
