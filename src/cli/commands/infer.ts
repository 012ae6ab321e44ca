import { mkdirSync, writeFileSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import { Option, type Command } from "commander";
import sharp from "sharp";
import { loadPresentationImage, type PresentationImage } from "../../image/presentation.ts";
import { Classifier, upsampleHeatmap, type InferenceResult } from "../../inference/classifier.ts";
import type { Provider } from "../../inference/providers.ts";
import { DEFAULT_MAP_SELECTION, MAP_SELECTIONS, type MapSelection } from "../../results/pm/selection.ts";
import { writeDicomResults } from "../../results/write.ts";
import { CliError } from "../main.ts";
import { intOption, runtimeOptions } from "./model.ts";

export interface InferOptions {
  model: string;
  out: string;
  provider: Provider;
  threads?: number;
  batch: number;
  pool: number;
  features: boolean;
  dicom: boolean;
  /** With --dicom: which findings get a Parametric Map. */
  parametricMaps: MapSelection;
  allowFallback: boolean;
}

/** What every output writer gets for one input. */
export interface InferredInput {
  /** The input path as given. */
  input: string;
  /** `<out>/<baseName>.*` is where this input's files go. */
  baseName: string;
  outDir: string;
  image: PresentationImage;
  result: InferenceResult;
  classifier: Classifier;
  options: InferOptions;
}

/** Writes one kind of output for one input; returns the paths written. */
export type OutputWriter = (r: InferredInput) => Promise<string[]>;

/**
 * The writers to run for each input, chosen from the options. Another output (e.g. DICOM SR/SC) is one
 * option in `register` and one line here.
 */
function outputWriters(opts: InferOptions): OutputWriter[] {
  const writers: OutputWriter[] = [writeFindingsJson, writeHeatmapPngs];
  if (opts.features) writers.push(writeFeaturesJson);
  if (opts.dicom) writers.push(writeDicomResults);
  return writers;
}

export async function writeFindingsJson(r: InferredInput): Promise<string[]> {
  const { card } = r.result;
  const path = join(r.outDir, `${r.baseName}.json`);
  const doc = {
    input: resolve(r.input),
    findings: r.result.findings.map((f) => ({ label: f.label, probability: f.probability, positive: f.positive, threshold: f.threshold, code: f.code })),
    model: {
      name: card.name, version: card.version, deviceUid: card.deviceUid, manufacturer: card.manufacturer,
      weightsSha256: card.weightsSha256, architecture: card.architecture, training: card.training.summary,
    },
    image: { width: r.image.width, height: r.image.height, kind: r.image.source.kind, steps: r.image.steps },
    heatmaps: r.result.heatmaps.map((h) => ({ label: h.label, file: `${r.baseName}.heatmap.${h.label}.png`, gridWidth: h.width, gridHeight: h.height })),
    provider: r.classifier.provider,
    ...(r.classifier.fallbackReason ? { providerFallback: r.classifier.fallbackReason } : {}),
    inferenceMs: Math.round(r.result.inferenceMs * 100) / 100,
  };
  writeFileSync(path, `${JSON.stringify(doc, null, 2)}\n`);
  return [path];
}

/** 8-bit grayscale PNGs at the input image's size (0 = no activation, 255 = the map's maximum). */
export async function writeHeatmapPngs(r: InferredInput): Promise<string[]> {
  const { width, height } = r.image;
  return Promise.all(r.result.heatmaps.map(async (h) => {
    const up = upsampleHeatmap(h, width, height);
    const bytes = Buffer.alloc(width * height);
    for (let i = 0; i < up.length; i++) bytes[i] = Math.round(Math.min(Math.max(up[i]!, 0), 1) * 255);
    const path = join(r.outDir, `${r.baseName}.heatmap.${h.label}.png`);
    await sharp(bytes, { raw: { width, height, channels: 1 } }).toColourspace("b-w").png().toFile(path);
    return path;
  }));
}

/** The final feature map ([channels][height][width]) and its global average (the embedding the head reads). */
async function writeFeaturesJson(r: InferredInput): Promise<string[]> {
  const f = r.result.features;
  if (!f) throw new Error("the classifier was loaded without keepFeatures");
  const P = f.height * f.width;
  const pooled = Array.from({ length: f.channels }, (_, c) => { let s = 0; for (let p = 0; p < P; p++) s += f.data[c * P + p]!; return s / P; });
  const path = join(r.outDir, `${r.baseName}.features.json`);
  writeFileSync(path, `${JSON.stringify({ output: r.result.card.outputs.features, layout: "CHW", channels: f.channels, height: f.height, width: f.width, pooled, map: Array.from(f.data) })}\n`);
  return [path];
}

/** `test1.dcm` → `test1`. */
function baseNameOf(input: string): string {
  return basename(input, extname(input)) || basename(input);
}

export async function runInfer(inputs: string[], opts: InferOptions, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<{ failed: { input: string; reason: string }[]; written: string[] }> {
  const outDir = resolve(opts.out);
  mkdirSync(outDir, { recursive: true });
  const classifier = await Classifier.load(resolve(opts.model), {
    provider: opts.provider, threads: opts.threads, batchSize: opts.batch, poolSize: opts.pool,
    allowFallback: opts.allowFallback, keepFeatures: opts.features,
  });
  if (classifier.fallbackReason) log(`cxr infer: ${classifier.fallbackReason}; using cpu (--allow-fallback)`);
  const writers = outputWriters(opts);
  const used = new Map<string, string>();
  const failed: { input: string; reason: string }[] = [];
  const written: string[] = [];

  const processOne = async (input: string): Promise<void> => {
    try {
      // Names that would collide in one output folder are an error for the later input.
      const baseName = baseNameOf(input);
      const earlier = used.get(baseName);
      if (earlier !== undefined) throw new Error(`its outputs would overwrite those of ${earlier} (same base name "${baseName}")`);
      used.set(baseName, input);
      const image = await loadPresentationImage(input);
      const result = await classifier.infer(image);
      const r: InferredInput = { input, baseName, outDir, image, result, classifier, options: opts };
      for (const w of writers) written.push(...(await w(r)));
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)).split("\n")[0]!;
      failed.push({ input, reason });
      log(`cxr infer: ${input}: ${reason}`);
    }
  };
  try {
    // Enough inputs in flight to fill every session's batch; the pool batches them.
    const window = Math.max(1, classifier.batchSize * opts.pool);
    for (let i = 0; i < inputs.length; i += window) await Promise.all(inputs.slice(i, i + window).map(processOne));
  } finally {
    await classifier.close();
  }
  return { failed, written };
}

export function register(program: Command): void {
  const infer = program
    .command("infer")
    .description("classify chest X-rays (DICOM, PNG, JPEG): <out>/<name>.json with 14 findings in the card's order, <out>/<name>.heatmap.<label>.png per finding")
    .argument("<inputs...>", "DICOM, PNG or JPEG files")
    .requiredOption("--model <dir>", "model folder (model.onnx + model-card.json)")
    .requiredOption("--out <dir>", "output folder");
  for (const o of runtimeOptions()) infer.addOption(o);
  infer
    .option("--batch <N>", "images per session run", intOption("--batch", 1), 1)
    .option("--pool <N>", "sessions running at the same time (the extra ones in worker threads)", intOption("--pool", 1), 1)
    .option("--features", "also write <out>/<name>.features.json (final feature map and its global average)", false)
    .option("--dicom", "for DICOM inputs also write <out>/<name>.sr.dcm (TID 1500 SR), <out>/<name>.sc-<n>.dcm (heatmap Secondary Captures) and <out>/<name>.pm-<finding>.dcm (Parametric Maps, see --parametric-maps)", false)
    .addOption(new Option("--parametric-maps <which>", "with --dicom: Parametric Maps of every finding, of the positive ones (else of the most probable one), or none").choices([...MAP_SELECTIONS]).default(DEFAULT_MAP_SELECTION))
    .option("--allow-fallback", "use the cpu provider if the requested one cannot start, instead of failing", false)
    .action(async (inputs: string[], opts: InferOptions) => {
      const { failed } = await runInfer(inputs, opts);
      if (failed.length) throw new CliError(`${failed.length} of ${inputs.length} input(s) failed: ${failed.map((f) => f.input).join(", ")}`);
    });
}
