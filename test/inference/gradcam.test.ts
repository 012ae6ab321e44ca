import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { normalizeActivationMaps, upsampleHeatmap } from "../../src/inference/gradcam.ts";
import { CAM_OUTPUT, withClassActivationMaps } from "../../src/inference/onnx-graph.ts";
import { findLinearAfterPool } from "../../src/model/head.ts";
import { decodeModel, encodeModel } from "../../src/model/onnx-builder.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { seededRandom } from "../../src/model/rng.ts";
import { buildSmallModel } from "./small-model.ts";

const C = 8, H = 5, W = 6, K = 14, P = H * W;
const labels = [...NIH_LABELS];

describe.each(["gemm", "matmul"] as const)("exact GradCAM vs finite differences through ORT (%s head)", (head) => {
  it("d logit_k / dA_c(y,x) = W_kc/(H*W), and the CAM from numerical gradients equals the session's exact maps", async () => {
    // The model's input IS the feature map: features → GAP → Flatten → dense → logits; the classifier's
    // GradCAM output is added to it exactly as Classifier.load does.
    const model = buildSmallModel({ seed: 7, channels: C, classes: K, head, featuresAsInput: true });
    const graph = decodeModel(model.bytes);
    const withCam = encodeModel(withClassActivationMaps(graph, "features", findLinearAfterPool(graph, "features", "fd-model"), "fd-model"));
    const session = await ort.InferenceSession.create(withCam);
    const rnd = seededRandom(11);
    const A = new Float32Array(C * P).map(() => rnd() * 2 - 0.4);
    // One batch: every element perturbed by +eps and by -eps (the graph is linear in A, so central
    // differences are exact up to float32 rounding).
    const eps = 0.05;
    const n = 2 * C * P;
    const batch = new Float32Array(n * C * P);
    for (let e = 0; e < C * P; e++) {
      batch.set(A, 2 * e * C * P); batch[2 * e * C * P + e]! += eps;
      batch.set(A, (2 * e + 1) * C * P); batch[(2 * e + 1) * C * P + e]! -= eps;
    }
    const out = await session.run({ features: new ort.Tensor("float32", batch, [n, C, H, W]) });
    const logits = out.logits!.data as Float32Array;
    const exactRaw = (await session.run({ features: new ort.Tensor("float32", A, [1, C, H, W]) }))[CAM_OUTPUT]!;
    expect(exactRaw.dims).toEqual([1, K, H, W]);
    await session.release();
    const grad = new Float64Array(K * C * P); // [k][c*P + p]
    for (let e = 0; e < C * P; e++) for (let k = 0; k < K; k++) grad[k * C * P + e] = (logits[2 * e * K + k]! - logits[(2 * e + 1) * K + k]!) / (2 * eps);

    let maxGradErr = 0;
    for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) for (let p = 0; p < P; p++) {
      maxGradErr = Math.max(maxGradErr, Math.abs(grad[k * C * P + c * P + p]! - model.weights[k]![c]! / P));
    }
    expect(maxGradErr).toBeLessThan(2e-4);

    // GradCAM from the numerical gradients: alpha_kc = spatial mean of the gradient, CAM = ReLU(sum_c alpha_kc A_c), / max.
    const numeric = Array.from({ length: K }, (_, k) => {
      const cam = new Float64Array(P);
      for (let c = 0; c < C; c++) {
        let alpha = 0;
        for (let p = 0; p < P; p++) alpha += grad[k * C * P + c * P + p]!;
        alpha /= P;
        for (let p = 0; p < P; p++) cam[p]! += alpha * A[c * P + p]!;
      }
      const max = Math.max(0, ...cam);
      return Array.from(cam, (v) => (max > 0 ? Math.max(v, 0) / max : 0));
    });
    const exact = normalizeActivationMaps(exactRaw.data as Float32Array, labels, H, W);
    let maxCamErr = 0;
    exact.forEach((h, k) => h.data.forEach((v, p) => { maxCamErr = Math.max(maxCamErr, Math.abs(v - numeric[k]![p]!)); }));
    expect(maxCamErr).toBeLessThan(1e-3);
    // Each map spans [0,1] when it has any positive evidence.
    for (const h of exact) expect(Math.max(...h.data)).toBeCloseTo(1, 6);
    // The 14 maps differ from each other.
    for (let a = 0; a < K; a++) for (let b = a + 1; b < K; b++) {
      const d = Math.max(...exact[a]!.data.map((v, p) => Math.abs(v - exact[b]!.data[p]!)));
      expect(d, `${labels[a]} vs ${labels[b]}`).toBeGreaterThan(0.01);
    }
  });
});

describe("normalizeActivationMaps", () => {
  it("divides each map by its maximum, and gives all zeros where no position has positive evidence", () => {
    const raw = new Float32Array([0, 0, 0, 0, 1.25, 2.25, 3.25, 4.25]); // two 2x2 maps, ReLU'd
    const [none, some] = normalizeActivationMaps(raw, ["a", "b"], 2, 2);
    expect(Array.from(none!.data)).toEqual([0, 0, 0, 0]);
    expect(Array.from(some!.data)).toEqual([1.25 / 4.25, 2.25 / 4.25, 3.25 / 4.25, 1].map(Math.fround));
    expect([some!.label, some!.width, some!.height]).toEqual(["b", 2, 2]);
    expect(Array.from(raw.slice(4))).toEqual([1.25, 2.25, 3.25, 4.25]); // the session's output is left as it was
  });
});

describe("upsampleHeatmap", () => {
  it("is bilinear with pixel centres aligned and clamped edges", () => {
    const h = { label: "x", width: 2, height: 1, data: new Float32Array([0, 1]) };
    // Output pixel centres 0.5..3.5 map to grid coordinates -0.25, 0.25, 0.75, 1.25 → clamped 0, .25, .75, 1.
    expect(Array.from(upsampleHeatmap(h, 4, 1))).toEqual([0, 0.25, 0.75, 1]);
    const flat = upsampleHeatmap({ label: "y", width: 3, height: 3, data: new Float32Array(9).fill(0.4) }, 17, 11);
    expect(flat.length).toBe(17 * 11);
    for (const v of flat) expect(v).toBeCloseTo(0.4, 6);
    // Same size: identity.
    const g = { label: "z", width: 3, height: 2, data: new Float32Array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) };
    expect(Array.from(upsampleHeatmap(g, 3, 2))).toEqual(Array.from(g.data));
  });
});
