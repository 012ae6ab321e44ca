import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PresentationImage } from "../image/presentation.ts";
import { toModelTensor } from "../image/tensor.ts";
import { checkWeightsMatchCard, MODEL_FILE, readModelCard, type CodedConcept, type ModelCard } from "../model/card.ts";
import { findLinearAfterPool, type ClassifierHead } from "../model/head.ts";
import { decodeModel, encodeModel, modelInput } from "../model/onnx-builder.ts";
import { normalizeActivationMaps, upsampleHeatmap, type Heatmap } from "./gradcam.ts";
import { CAM_OUTPUT, withClassActivationMaps } from "./onnx-graph.ts";
import type { Provider } from "./providers.ts";
import { SessionPool, type Outputs } from "./session-pool.ts";

export { upsampleHeatmap, type Heatmap };

export interface FindingResult { label: string; code: CodedConcept; probability: number; threshold: number; positive: boolean }

/** The final feature map of one image (channel-major, `channels` x `height` x `width`). */
export interface FeatureGrid { channels: number; height: number; width: number; data: Float32Array }

export interface InferenceResult {
  findings: FindingResult[];
  heatmaps: Heatmap[];
  card: ModelCard;
  /** Time from submitting the image's tensor to its results, queueing in a batch included. */
  inferenceMs: number;
  /** Only when the classifier was loaded with `keepFeatures` (e.g. `cxr infer --features`). */
  features?: FeatureGrid;
}

export interface ClassifierOptions {
  provider?: Provider;
  /** ORT intra-op threads per session. */
  threads?: number;
  /** Sessions that run at the same time (the first in this thread, the others in worker threads). */
  poolSize?: number;
  /** Images collected into one session run (at most). */
  batchSize?: number;
  /** Use the CPU provider when the requested one cannot start, instead of failing. */
  allowFallback?: boolean;
  /** Keep each image's final feature map in the result. */
  keepFeatures?: boolean;
}

export class Classifier {
  private constructor(
    readonly card: ModelCard,
    /** The dense layer after global average pooling, as read from model.onnx ([channels][classes]). */
    readonly head: ClassifierHead,
    private readonly pool: SessionPool,
    private readonly modelPath: string,
    private readonly keepFeatures: boolean,
  ) {}

  /** `<modelDir>/model.onnx` + `<modelDir>/model-card.json`; checks that the card and the graph (its weights, head and input) agree. */
  static async load(modelDir: string, opts: ClassifierOptions = {}): Promise<Classifier> {
    const card = readModelCard(modelDir);
    const modelPath = join(modelDir, MODEL_FILE);
    const bytes = readFileSync(modelPath);
    const model = decodeModel(bytes, modelPath);
    // Results carry the card's Device UID: refuse weights that are not the ones the card describes.
    checkWeightsMatchCard(model, card, modelPath);
    // GradCAM's weights: the dense layer after global average pooling of the features output.
    const head = findLinearAfterPool(model, card.outputs.features, modelPath);
    if (head.classes !== card.labels.length) throw new Error(`${modelPath}: the dense head has ${head.classes} outputs but the card lists ${card.labels.length} labels`);
    const featureDims = model.graph?.output?.find((o) => o.name === card.outputs.features)?.type?.tensorType?.shape?.dim ?? [];
    const featureChannels = featureDims[1]?.dimValue != null ? Number(featureDims[1].dimValue) : undefined;
    if (featureDims.length !== 4 || (featureChannels !== undefined && featureChannels !== head.channels)) {
      throw new Error(`${modelPath}: output "${card.outputs.features}" must be an NCHW feature map [N,${head.channels},H,W] for GradCAM`);
    }
    const input = modelInput(model, modelPath);
    const s = card.input.size;
    const imageDims = card.input.layout === "NCHW" ? [3, s, s] : [s, s, 3];
    const fixed = input.dims.slice(1);
    if (fixed.length !== 3 || fixed.some((d, i) => typeof d === "number" && d !== imageDims[i])) {
      throw new Error(`${modelPath}: input "${input.name}" has shape [${input.dims.join(",")}], the card says ${card.input.layout} ${s}x${s}`);
    }
    const keepFeatures = opts.keepFeatures ?? false;
    const session = encodeModel(withClassActivationMaps(model, card.outputs.features, head, modelPath));
    const outputs = [card.outputs.probabilities, CAM_OUTPUT, ...(keepFeatures ? [card.outputs.features] : [])];
    const pool = await SessionPool.create(session, modelPath, { name: input.name, imageDims, fixedBatch: typeof input.dims[0] === "number", outputs }, opts);
    return new Classifier(card, head, pool, modelPath, keepFeatures);
  }

  /** The provider the sessions run on (differs from the requested one only after an allowed fallback). */
  get provider(): Provider { return this.pool.provider; }
  get fallbackReason(): string | undefined { return this.pool.fallbackReason; }
  get batchSize(): number { return this.pool.batchSize; }
  /** Session runs so far and the images they carried. */
  get runStats(): { runs: number; images: number } { return { ...this.pool.stats }; }

  infer(img: PresentationImage): Promise<InferenceResult> {
    return this.inferTensor(toModelTensor(img, this.card.input));
  }

  inferBatch(imgs: PresentationImage[]): Promise<InferenceResult[]> {
    return Promise.all(imgs.map((img) => this.infer(img)));
  }

  /** From a preprocessed tensor (3*size*size in the card's layout): 14 findings + 14 heatmaps. */
  async inferTensor(tensor: Float32Array): Promise<InferenceResult> {
    const t0 = performance.now();
    const outputs = await this.pool.run(tensor);
    return this.interpret(outputs, performance.now() - t0);
  }

  private interpret(outputs: Outputs, inferenceMs: number): InferenceResult {
    const { probabilities: probName, features: featName } = this.card.outputs;
    const probs = outputs[probName], cams = outputs[CAM_OUTPUT];
    if (!probs || !cams) throw new Error(`${this.modelPath}: the run did not return outputs "${probName}" and "${CAM_OUTPUT}"`);
    const findings = this.card.labels.map((l, k) => {
      const probability = probs.data[k]!;
      return { label: l.name, code: l.code, probability, threshold: l.threshold, positive: probability >= l.threshold };
    });
    const [, , height, width] = cams.dims as [number, number, number, number];
    const heatmaps = normalizeActivationMaps(cams.data, this.card.labels.map((l) => l.name), height, width);
    const result: InferenceResult = { findings, heatmaps, card: this.card, inferenceMs };
    if (this.keepFeatures) {
      const f = outputs[featName];
      if (!f) throw new Error(`${this.modelPath}: the run did not return output "${featName}"`);
      const [, channels, fh, fw] = f.dims as [number, number, number, number];
      result.features = { channels, height: fh, width: fw, data: f.data.slice() };
    }
    return result;
  }

  close(): Promise<void> { return this.pool.close(); }
}
