import * as tf from "@tensorflow/tfjs-core";
import { BLOCKS, BN_EPSILON, HEAD_BIAS, HEAD_KERNEL, type WeightMap } from "../model/densenet121.ts";

/**
 * The same DenseNet121-14 as src/model/densenet121.ts, written with tfjs ops (NHWC) so that it can be
 * trained with autodiff on any tfjs backend (cpu, webgpu). Parameters keep the ONNX initializer
 * names; conv kernels are converted OIHW ⇄ HWIO at the boundary. BatchNormalization runs in
 * inference mode (moving statistics fixed, gamma/beta trainable): the usual choice for fine-tuning
 * with small batches, and it keeps the exported ONNX graph exactly what was trained.
 */
export type Params = Map<string, tf.Variable>;

const MOVING = /\/moving_(mean|variance)$/;

/** tfjs variables from ONNX-layout weights; `trainable(name)` decides which get gradients. */
export function toParams(weights: WeightMap, trainable: (name: string) => boolean): Params {
  const out: Params = new Map();
  for (const [name, w] of weights) {
    let t: tf.Tensor = tf.tensor(w.data, w.dims);
    if (w.dims.length === 4) {
      const hwio = tf.transpose(t, [2, 3, 1, 0]); // OIHW → HWIO
      t.dispose();
      t = hwio;
    }
    out.set(name, tf.variable(t, trainable(name) && !MOVING.test(name), name.replace(/[^A-Za-z0-9_.\-/]/g, "_")));
    t.dispose();
  }
  return out;
}

/** Sets variables from ONNX-layout weights (e.g. to go back to the best epoch's). */
export function assignParams(params: Params, weights: WeightMap): void {
  for (const [name, w] of weights) {
    const v = params.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    tf.tidy(() => {
      const t = tf.tensor(w.data, w.dims);
      v.assign(w.dims.length === 4 ? tf.transpose(t, [2, 3, 1, 0]) : t);
    });
  }
}

/** Back to ONNX-layout weights (for saveDenseNet121Dir). Async: the WebGPU backend has no synchronous read in Node. */
export async function fromParams(params: Params): Promise<WeightMap> {
  const out: WeightMap = new Map();
  for (const [name, v] of params) {
    const t = v.shape.length === 4 ? tf.transpose(v, [3, 2, 0, 1]) : v; // HWIO → OIHW
    out.set(name, { dims: t.shape.slice(), data: (await t.data()).slice() as Float32Array });
    if (t !== v) t.dispose();
  }
  return out;
}

/** Where the forward pass starts: the image, or the input of dense block 5 (output of transition 4). */
export type Start = "image" | "block5";

export function forward(params: Params, x: tf.Tensor4D, start: Start = "image"): tf.Tensor2D {
  const p = (name: string) => {
    const v = params.get(name);
    if (!v) throw new Error(`missing parameter ${name}`);
    return v;
  };
  const conv = (name: string, t: tf.Tensor4D, stride: number, pad: "same" | "valid" = "valid"): tf.Tensor4D => {
    const k = p(`${name}/kernel`) as tf.Tensor4D;
    const [kh, kw, cin, cout] = k.shape;
    if (stride !== 1 || kh !== kw || (kh !== 1 && pad !== "same")) return tf.conv2d(t, k, stride, pad);
    // Stride-1 1x1 and 3x3 "same" convolutions as one matMul over (shifted) pixels: tfjs-cpu's
    // conv2d backward kernels are naive loops (15 s for one 1x1 filter gradient of block 5 at
    // batch 4), its matMul is blocked; the webgpu backend is fine either way.
    const [n, h, w] = t.shape;
    let cols: tf.Tensor = t;
    if (kh > 1) {
      const r = (kh - 1) / 2;
      const padded = tf.pad(t, [[0, 0], [r, r], [r, r], [0, 0]]);
      const shifts: tf.Tensor4D[] = [];
      for (let dy = 0; dy < kh; dy++) for (let dx = 0; dx < kw; dx++) shifts.push(tf.slice(padded, [0, dy, dx, 0], [n, h, w, cin]));
      cols = tf.concat(shifts, 3); // channel order (dy, dx, cin) = HWIO's row-major order
    }
    const y = tf.matMul(tf.reshape(cols, [n * h * w, kh * kw * cin]), tf.reshape(k, [kh * kw * cin, cout]));
    return tf.reshape(y, [n, h, w, cout]);
  };
  const bn = (name: string, t: tf.Tensor4D) =>
    tf.batchNorm(t, p(`${name}/moving_mean`) as tf.Tensor1D, p(`${name}/moving_variance`) as tf.Tensor1D, p(`${name}/beta`) as tf.Tensor1D, p(`${name}/gamma`) as tf.Tensor1D, BN_EPSILON);
  let h: tf.Tensor4D = x;
  if (start === "image") {
    h = tf.relu(bn("conv1/bn", conv("conv1/conv", tf.pad(h, [[0, 0], [3, 3], [3, 3], [0, 0]]), 2)));
    // Zero padding before the 3x3/2 max pool equals Keras's: inputs are ReLU outputs (>= 0).
    h = tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "valid");
  }
  BLOCKS.forEach((count, bi) => {
    const stage = bi + 2;
    if (start === "block5" && stage < 5) return;
    for (let i = 1; i <= count; i++) {
      const q = `conv${stage}_block${i}`;
      let y = tf.relu(bn(`${q}_0_bn`, h));
      y = tf.relu(bn(`${q}_1_bn`, conv(`${q}_1_conv`, y, 1)));
      y = conv(`${q}_2_conv`, y, 1, "same");
      h = tf.concat([h, y], 3);
    }
    if (stage < 5) {
      const q = `pool${stage}`;
      h = tf.avgPool(conv(`${q}_conv`, tf.relu(bn(`${q}_bn`, h)), 1), 2, 2, "valid");
    }
  });
  h = tf.relu(bn("bn", h));
  const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
  return tf.sigmoid(tf.add(tf.matMul(pooled, p(HEAD_KERNEL) as tf.Tensor2D), p(HEAD_BIAS))) as tf.Tensor2D;
}

/** Names trained when fine-tuning the last dense block: block 5, the final BN and the head. */
export function isLastBlockParam(name: string): boolean {
  return name.startsWith("conv5_") || name.startsWith("bn/") || name.startsWith("predictions/");
}
