/**
 * An independent, literal Keras DenseNet121 forward pass for tests: channels-last tensors, Keras weight
 * layouts (conv kernels HWIO, Dense [in, out]), ZeroPadding2D followed by valid convolutions and pools
 * exactly as keras/applications/densenet.py builds the network, float64 arithmetic. Slow, so tests use it
 * at tiny input sizes (32x32).
 */
export type KerasWeights = Map<string, { shape: number[]; data: Float32Array }>;

interface T { h: number; w: number; c: number; d: Float64Array } // one image, HWC

function zeroPad(x: T, p: number): T {
  const h = x.h + 2 * p, w = x.w + 2 * p;
  const d = new Float64Array(h * w * x.c);
  for (let i = 0; i < x.h; i++) for (let j = 0; j < x.w; j++) for (let c = 0; c < x.c; c++) d[((i + p) * w + j + p) * x.c + c] = x.d[(i * x.w + j) * x.c + c]!;
  return { h, w, c: x.c, d };
}

function conv(x: T, k: { shape: number[]; data: Float32Array }, stride: number): T {
  const [kh, kw, ci, co] = k.shape as [number, number, number, number];
  if (ci !== x.c) throw new Error(`conv input channels ${x.c} != ${ci}`);
  const h = Math.floor((x.h - kh) / stride) + 1, w = Math.floor((x.w - kw) / stride) + 1;
  const d = new Float64Array(h * w * co);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      const o = (i * w + j) * co;
      for (let a = 0; a < kh; a++)
        for (let b = 0; b < kw; b++) {
          const xi = ((i * stride + a) * x.w + j * stride + b) * x.c;
          const ki = (a * kw + b) * ci * co;
          for (let c = 0; c < ci; c++) {
            const v = x.d[xi + c]!;
            if (v === 0) continue;
            const kr = ki + c * co;
            for (let f = 0; f < co; f++) d[o + f]! += v * k.data[kr + f]!;
          }
        }
    }
  return { h, w, c: co, d };
}

function bn(x: T, W: KerasWeights, name: string): T {
  const g = W.get(`${name}/gamma`)!.data, b = W.get(`${name}/beta`)!.data, m = W.get(`${name}/moving_mean`)!.data, v = W.get(`${name}/moving_variance`)!.data;
  const d = new Float64Array(x.d.length);
  for (let i = 0; i < d.length; i++) {
    const c = i % x.c;
    d[i] = ((x.d[i]! - m[c]!) / Math.sqrt(v[c]! + 1.001e-5)) * g[c]! + b[c]!;
  }
  return { ...x, d };
}

const relu = (x: T): T => ({ ...x, d: x.d.map((v) => (v > 0 ? v : 0)) });

function pool(x: T, k: number, s: number, kind: "max" | "avg"): T {
  const h = Math.floor((x.h - k) / s) + 1, w = Math.floor((x.w - k) / s) + 1;
  const d = new Float64Array(h * w * x.c);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++)
      for (let c = 0; c < x.c; c++) {
        let acc = kind === "max" ? -Infinity : 0;
        for (let a = 0; a < k; a++)
          for (let b = 0; b < k; b++) {
            const v = x.d[((i * s + a) * x.w + j * s + b) * x.c + c]!;
            acc = kind === "max" ? Math.max(acc, v) : acc + v;
          }
        d[(i * w + j) * x.c + c] = kind === "max" ? acc : acc / (k * k);
      }
  return { h, w, c: x.c, d };
}

function concat(a: T, b: T): T {
  const c = a.c + b.c;
  const d = new Float64Array(a.h * a.w * c);
  for (let p = 0; p < a.h * a.w; p++) {
    for (let i = 0; i < a.c; i++) d[p * c + i] = a.d[p * a.c + i]!;
    for (let i = 0; i < b.c; i++) d[p * c + a.c + i] = b.d[p * b.c + i]!;
  }
  return { h: a.h, w: a.w, c, d };
}

const kernel = (W: KerasWeights, name: string) => {
  const k = W.get(`${name}/kernel`);
  if (!k) throw new Error(`reference: no weight ${name}/kernel`);
  return k;
};

/**
 * image: HWC float values (already normalised). Returns the final ReLU features (HWC) and, when
 * `head` names a Dense layer in W, the sigmoid probabilities.
 */
export function kerasDenseNet121(image: Float32Array, size: number, W: KerasWeights, head?: string): { features: T; probabilities?: Float64Array } {
  let x: T = { h: size, w: size, c: 3, d: Float64Array.from(image) };
  x = conv(zeroPad(x, 3), kernel(W, "conv1/conv"), 2);
  x = relu(bn(x, W, "conv1/bn"));
  x = pool(zeroPad(x, 1), 3, 2, "max");
  [6, 12, 24, 16].forEach((blocks, bi) => {
    const stage = bi + 2;
    for (let i = 1; i <= blocks; i++) {
      const p = `conv${stage}_block${i}`;
      let y = relu(bn(x, W, `${p}_0_bn`));
      y = conv(y, kernel(W, `${p}_1_conv`), 1);
      y = relu(bn(y, W, `${p}_1_bn`));
      y = conv(zeroPad(y, 1), kernel(W, `${p}_2_conv`), 1); // padding="same"
      x = concat(x, y);
    }
    if (stage < 5) {
      x = relu(bn(x, W, `pool${stage}_bn`));
      x = conv(x, kernel(W, `pool${stage}_conv`), 1);
      x = pool(x, 2, 2, "avg");
    }
  });
  const features = relu(bn(x, W, "bn"));
  if (!head) return { features };
  const k = kernel(W, head), b = W.get(`${head}/bias`)!.data;
  const units = k.shape[1]!;
  const probabilities = new Float64Array(units);
  const n = features.h * features.w;
  for (let u = 0; u < units; u++) {
    let z = b[u]!;
    for (let c = 0; c < features.c; c++) {
      let mean = 0;
      for (let p = 0; p < n; p++) mean += features.d[p * features.c + c]!;
      z += (mean / n) * k.data[c * units + u]!;
    }
    probabilities[u] = 1 / (1 + Math.exp(-z));
  }
  return { features, probabilities };
}

/** Keras DenseNet121's layers with weights (name, kind, Keras shapes), written out from densenet.py. */
export function kerasDenseNet121Layers(headName?: string, units = 14): { name: string; weights: { name: string; shape: number[] }[] }[] {
  const out: { name: string; weights: { name: string; shape: number[] }[] }[] = [];
  const convL = (name: string, k: number, ci: number, co: number) => out.push({ name, weights: [{ name: "kernel", shape: [k, k, ci, co] }] });
  const bnL = (name: string, c: number) => out.push({ name, weights: ["gamma", "beta", "moving_mean", "moving_variance"].map((n) => ({ name: n, shape: [c] })) });
  convL("conv1/conv", 7, 3, 64);
  bnL("conv1/bn", 64);
  let c = 64;
  [6, 12, 24, 16].forEach((blocks, bi) => {
    const stage = bi + 2;
    for (let i = 1; i <= blocks; i++) {
      const p = `conv${stage}_block${i}`;
      bnL(`${p}_0_bn`, c);
      convL(`${p}_1_conv`, 1, c, 128);
      bnL(`${p}_1_bn`, 128);
      convL(`${p}_2_conv`, 3, 128, 32);
      c += 32;
    }
    if (stage < 5) {
      bnL(`pool${stage}_bn`, c);
      convL(`pool${stage}_conv`, 1, c, c / 2);
      c /= 2;
    }
  });
  bnL("bn", c);
  if (headName) out.push({ name: headName, weights: [{ name: "kernel", shape: [c, units] }, { name: "bias", shape: [units] }] });
  return out;
}
