import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { describe, expect, it } from "vitest";
import { balancingWeights, computeClassFreqs, weightedLoss, weightedLossTensor } from "../../src/training/loss.ts";

// The seed's own test cases (AI for Medicine course 1, week 1 assignment).
describe("compute_class_freqs / get_weighted_loss (seed values)", () => {
  it("frequencies of the seed's 5x3 labels matrix are [0.8, 0.4, 0.8]", () => {
    const labels = [
      [1, 0, 0],
      [0, 1, 1],
      [1, 0, 1],
      [1, 1, 1],
      [1, 0, 1],
    ];
    const f = computeClassFreqs(labels);
    expect(f.positive.map((v) => +v.toFixed(10))).toEqual([0.8, 0.4, 0.8]);
    expect(f.negative.map((v) => +v.toFixed(10))).toEqual([0.2, 0.6, 0.2]);
    const w = balancingWeights(f);
    expect(w.pos.map((v) => +v.toFixed(10))).toEqual([0.2, 0.6, 0.2]);
    expect(w.neg.map((v) => +v.toFixed(10))).toEqual([0.8, 0.4, 0.8]);
  });

  const yTrue = [
    [1, 1, 1],
    [1, 1, 0],
    [0, 1, 0],
    [1, 0, 1],
  ];
  const w = { pos: [0.25, 0.25, 0.5], neg: [0.75, 0.75, 0.5] };
  const pred1 = yTrue.map((r) => r.map(() => 0.7));
  const pred2 = yTrue.map((r) => r.map(() => 0.3));

  it("L = -0.4956203 for both predictions with epsilon = 1 (plain arrays)", () => {
    expect(weightedLoss(yTrue, pred1, w, 1)).toBeCloseTo(-0.4956203, 7);
    expect(weightedLoss(yTrue, pred2, w, 1)).toBeCloseTo(-0.4956203, 7);
  });

  it("the tfjs loss used for training gives the same values", async () => {
    await tf.setBackend("cpu");
    for (const pred of [pred1, pred2]) {
      const l = weightedLossTensor(tf.tensor2d(yTrue), tf.tensor2d(pred), w, 1);
      expect((await l.data())[0]).toBeCloseTo(-0.4956203, 6);
      l.dispose();
    }
    // with the default epsilon the loss is positive and penalises confident errors
    expect(weightedLoss(yTrue, pred1, w)).toBeGreaterThan(0);
  });
});
