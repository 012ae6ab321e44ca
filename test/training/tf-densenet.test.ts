import * as ort from "onnxruntime-node";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { buildDenseNet121Onnx, randomDenseNet121Weights } from "../../src/model/densenet121.ts";
import { forward, fromParams, toParams } from "../../src/training/tf-densenet.ts";
import { useCpuBackend } from "../../src/training/tfjs.ts";

describe("tfjs DenseNet121 (the trainable copy) equals the ONNX graph", () => {
  it("same probabilities as ORT on the project's ONNX at 32 px, with non-trivial BN statistics", async () => {
    await useCpuBackend();
    const S = 32;
    const w = randomDenseNet121Weights(3);
    let k = 0;
    for (const [name, v] of w) {
      k++;
      if (name.endsWith("/moving_variance")) v.data.fill(1 + (k % 5) * 0.2);
      else if (name.endsWith("/moving_mean")) v.data.fill(0.01 * (k % 3));
      else if (name.endsWith("/beta")) v.data.fill(0.02);
    }
    const session = await ort.InferenceSession.create(buildDenseNet121Onnx({ inputSize: S, weights: w }));
    const x = new Float32Array(2 * 3 * S * S).map((_, i) => Math.sin(i * 0.37));
    const ref = (await session.run({ image: new ort.Tensor("float32", x, [2, 3, S, S]) })).probabilities!.data as Float32Array;
    await session.release();
    const params = toParams(w, () => true);
    const y = tf.tidy(() => forward(params, tf.transpose(tf.tensor4d(x, [2, 3, S, S]), [0, 2, 3, 1]) as tf.Tensor4D)).dataSync();
    expect(y).toHaveLength(28);
    for (let i = 0; i < ref.length; i++) expect(Math.abs(ref[i]! - y[i]!)).toBeLessThan(1e-5);
    // and the weights go back to ONNX layout unchanged
    const back = await fromParams(params);
    expect(Array.from(back.get("conv1/conv/kernel")!.data)).toEqual(Array.from(w.get("conv1/conv/kernel")!.data));
    expect(back.get("conv1/conv/kernel")!.dims).toEqual(w.get("conv1/conv/kernel")!.dims);
  });
});
