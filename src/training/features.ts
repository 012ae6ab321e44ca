import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { loadPresentationImage, type PresentationImage } from "../image/presentation.ts";
import { toModelTensor, type InputSpec } from "../image/tensor.ts";
import { buildDenseNet121Model, FEATURE_CHANNELS, FEATURES_OUTPUT, featureGridSize, INPUT_NAME, trunkWeights, type WeightMap } from "../model/densenet121.ts";
import { ElemType, encodeModel, valueInfo } from "../model/onnx-builder.ts";
import { sessionOptions } from "../inference/providers.ts";
import type { Augmentation } from "./augment.ts";
import { applyAugmentation, augmentationKey } from "./augment.ts";
import { Progress } from "./progress.ts";

/**
 * Transfer learning runs the frozen DenseNet121 trunk once per image (and per augmented copy) and
 * keeps the globally average-pooled 1024-channel features on disk, keyed by the image's SHA-256,
 * the trunk's key (weights + input spec) and the augmentation. Training the head then costs
 * milliseconds per epoch instead of a DenseNet forward pass per image.
 */
export interface Trunk {
  /** SHA-256 over the trunk ONNX bytes and the input spec: the cache namespace. */
  key: string;
  spec: InputSpec;
  session: ort.InferenceSession;
  close(): Promise<void>;
}

export async function createTrunk(weights: WeightMap, spec: InputSpec, threads = 2): Promise<Trunk> {
  if (spec.layout !== "NCHW") throw new Error(`the DenseNet121 trunk takes NCHW input, the spec says ${spec.layout}`);
  const bytes = encodeModel(buildDenseNet121Model({ inputSize: spec.size, weights: trunkWeights(weights), part: "trunk" }));
  const key = createHash("sha256").update(bytes).update(JSON.stringify(spec)).digest("hex");
  const session = await ort.InferenceSession.create(bytes, sessionOptions("cpu", threads));
  return { key, spec, session, close: () => session.release() };
}

/** Global average pool of an [N, C, H, W] feature map → N rows of C values. */
export function globalAveragePool(data: Float32Array, n: number, c: number, hw: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const row = new Float32Array(c);
    for (let k = 0; k < c; k++) {
      let s = 0;
      const base = (i * c + k) * hw;
      for (let p = 0; p < hw; p++) s += data[base + p]!;
      row[k] = s / hw;
    }
    out.push(row);
  }
  return out;
}

export async function trunkFeatures(trunk: Trunk, imgs: PresentationImage[]): Promise<Float32Array[]> {
  const per = 3 * trunk.spec.size * trunk.spec.size;
  const batch = new Float32Array(imgs.length * per);
  imgs.forEach((img, i) => batch.set(toModelTensor(img, trunk.spec), i * per));
  const input = new ort.Tensor("float32", batch, [imgs.length, 3, trunk.spec.size, trunk.spec.size]);
  const out = await trunk.session.run({ [INPUT_NAME]: input });
  const fm = out[FEATURES_OUTPUT]!;
  const [n, c, h, w] = fm.dims as number[];
  if (c !== FEATURE_CHANNELS) throw new Error(`trunk produced ${c} channels, expected ${FEATURE_CHANNELS}`);
  const rows = globalAveragePool(fm.data as Float32Array, n!, c!, h! * w!);
  input.dispose();
  fm.dispose();
  return rows;
}

export function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export interface FeatureRequest {
  path: string;
  /** Augmented copy index (0 = the image as is). */
  copy: number;
}

/** One folder of fixed-length float32 arrays, one `<image sha>[-<augmentation>].f32` file per image. */
export class FeatureCache {
  /** `floats`: the length of every entry (a file of another size is a torn write and is recomputed). */
  constructor(readonly dir: string, private readonly floats: number) {
    mkdirSync(dir, { recursive: true });
  }
  file(imageSha: string, aug = ""): string {
    return join(this.dir, `${imageSha}${aug ? `-${aug}` : ""}.f32`);
  }
  get(imageSha: string, aug = ""): Float32Array | undefined {
    const p = this.file(imageSha, aug);
    if (!existsSync(p)) return undefined;
    const b = readFileSync(p);
    if (b.byteLength !== this.floats * 4) return undefined; // a torn write from an interrupted run: recompute
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  /** Written to a temporary file and renamed, so a reader never sees a partial entry. */
  put(imageSha: string, aug: string, f: Float32Array): void {
    const p = this.file(imageSha, aug);
    const tmp = `${p}.${process.pid}.tmp`;
    writeFileSync(tmp, new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
    renameSync(tmp, p);
  }
}

export interface ExtractOptions {
  cacheDir: string;
  batchSize?: number;
  augmentation?: Augmentation;
  /** Seed of the augmentation draws (copy k of image x always gets the same transform). */
  seed?: number;
  label?: string;
  progress?: boolean;
}

/**
 * Features for every request, from the cache when present. Unreadable images throw with the file
 * named (training data must be complete; evaluation reports and skips them before this point).
 */
export async function extractFeatures(trunk: Trunk, reqs: FeatureRequest[], opts: ExtractOptions): Promise<{ features: Float32Array[]; computed: number; seconds: number }> {
  const cache = new FeatureCache(join(opts.cacheDir, trunk.key.slice(0, 32)), FEATURE_CHANNELS);
  const batchSize = opts.batchSize ?? 8;
  const features = new Array<Float32Array>(reqs.length);
  const shaOf = new Map<string, string>();
  const pending: { i: number; sha: string; aug: string }[] = [];
  for (let i = 0; i < reqs.length; i++) {
    const r = reqs[i]!;
    const sha = shaOf.get(r.path) ?? fileSha256(r.path);
    shaOf.set(r.path, sha);
    const aug = r.copy === 0 || !opts.augmentation ? "" : augmentationKey(opts.augmentation, opts.seed ?? 0, sha, r.copy);
    const hit = cache.get(sha, aug);
    if (hit) features[i] = hit;
    else pending.push({ i, sha, aug });
  }
  const t0 = performance.now();
  const bar = opts.progress === false || pending.length === 0 ? undefined : new Progress(opts.label ?? "features", pending.length);
  for (let s = 0; s < pending.length; s += batchSize) {
    const chunk = pending.slice(s, s + batchSize);
    const imgs = await Promise.all(
      chunk.map(async ({ i, sha }) => {
        const r = reqs[i]!;
        const img = await loadPresentationImage(r.path);
        return r.copy === 0 || !opts.augmentation ? img : applyAugmentation(img, opts.augmentation, opts.seed ?? 0, sha, r.copy);
      }),
    );
    const rows = await trunkFeatures(trunk, imgs);
    chunk.forEach(({ i, sha, aug }, k) => {
      features[i] = rows[k]!;
      cache.put(sha, aug, rows[k]!);
    });
    bar?.tick(chunk.length);
  }
  bar?.done();
  return { features, computed: pending.length, seconds: (performance.now() - t0) / 1000 };
}

/** Output of transition 4 (AveragePool `pool4_pool`): the input of dense block 5. */
export const BLOCK5_INPUT = "pool4_pool";
export const BLOCK5_CHANNELS = 512;

/**
 * For last-block fine-tuning: the frozen part of the network (up to transition 4) runs once per image
 * in ORT, and its output (512 x g x g, g = feature grid size) is cached on disk in NHWC order for tfjs.
 */
export async function extractBlock5Inputs(
  weights: WeightMap,
  spec: InputSpec,
  paths: string[],
  opts: { cacheDir: string; threads?: number; batchSize?: number; progress?: boolean; label?: string },
): Promise<{ inputs: Float32Array[]; grid: number; computed: number; seconds: number }> {
  const model = buildDenseNet121Model({ inputSize: spec.size, weights: trunkWeights(weights), part: "trunk" });
  const grid = featureGridSize(spec.size);
  model.graph!.output = [valueInfo(BLOCK5_INPUT, ElemType.FLOAT, ["N", BLOCK5_CHANNELS, grid, grid])];
  const bytes = encodeModel(model);
  const key = createHash("sha256").update(bytes).update(JSON.stringify(spec)).digest("hex");
  const per = BLOCK5_CHANNELS * grid * grid;
  const cache = new FeatureCache(join(opts.cacheDir, `${key.slice(0, 32)}-block5`), per);
  const inputs = new Array<Float32Array>(paths.length);
  const pending: { i: number; sha: string }[] = [];
  paths.forEach((p, i) => {
    const sha = fileSha256(p);
    const hit = cache.get(sha);
    if (hit) inputs[i] = hit;
    else pending.push({ i, sha });
  });
  const t0 = performance.now();
  if (pending.length) {
    const session = await ort.InferenceSession.create(bytes, sessionOptions("cpu", opts.threads ?? 2));
    const bar = opts.progress === false ? undefined : new Progress(opts.label ?? "block 5 inputs", pending.length);
    const batch = opts.batchSize ?? 8;
    try {
      for (let s = 0; s < pending.length; s += batch) {
        const chunk = pending.slice(s, s + batch);
        const imgs = await Promise.all(chunk.map(({ i }) => loadPresentationImage(paths[i]!)));
        const x = new Float32Array(imgs.length * 3 * spec.size * spec.size);
        imgs.forEach((img, k) => x.set(toModelTensor(img, spec), k * 3 * spec.size * spec.size));
        const out = await session.run({ [INPUT_NAME]: new ort.Tensor("float32", x, [imgs.length, 3, spec.size, spec.size]) });
        const data = out[BLOCK5_INPUT]!.data as Float32Array;
        const plane = grid * grid;
        chunk.forEach(({ i, sha }, k) => {
          const nhwc = new Float32Array(per);
          for (let c = 0; c < BLOCK5_CHANNELS; c++) for (let p = 0; p < plane; p++) nhwc[p * BLOCK5_CHANNELS + c] = data[k * per + c * plane + p]!;
          inputs[i] = nhwc;
          cache.put(sha, "", nhwc);
        });
        bar?.tick(chunk.length);
      }
      bar?.done();
    } finally {
      await session.release();
    }
  }
  return { inputs, grid, computed: pending.length, seconds: (performance.now() - t0) / 1000 };
}
