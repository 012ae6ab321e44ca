import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { loadPresentationImage } from "../../src/image/presentation.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { readModelCard } from "../../src/model/card.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { parseCsv, readLabelTable, toCsv } from "../../src/training/dataset.ts";
import { createTrunk, extractFeatures } from "../../src/training/features.ts";
import { predictHead } from "../../src/training/head-trainer.ts";
import { checkForLeakage, findSplitLeakage, LeakageError, patientSplit } from "../../src/training/leakage.ts";
import { readModelWeights } from "../../src/model/model-dir.ts";
import { trainModel } from "../../src/training/train.ts";
import { trainFullNetwork } from "../../src/training/full-trainer.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

// The real NIH split (352 train / 79 valid / 89 test) at a 64 px input: the point is the plumbing and
// that learning happens; the demo model (models/demo) is trained at 224.
const SIZE = 64;
const LABELS = join(SHARED_NIH, "labels.csv");
const IMAGES = join(SHARED_NIH, "images");
const has = requireSharedData();

describe.runIf(has)("training on the shared NIH split (transfer learning, cached features)", () => {
  const tmp = tempDir("cxr-train-");
  const start = join(tmp.dir, "start");
  const cache = join(tmp.dir, "cache");
  beforeAll(() => {
    initModelDir({ inputSize: SIZE, seed: 121, out: start });
  });
  afterAll(() => tmp.cleanup());

  it("check_for_leakage as in the seed; the shared CSV has none; cxr split keeps patients together", () => {
    expect(checkForLeakage([{ patientId: "1" }, { patientId: "2" }], [{ patientId: "3" }, { patientId: "2" }])).toBe(true);
    expect(checkForLeakage([{ patientId: "1" }], [{ patientId: "3" }])).toBe(false);
    const table = readLabelTable(LABELS);
    expect(findSplitLeakage(table.rows)).toEqual([]);
    const a = patientSplit(table.rows, { train: 0.7, valid: 0.15, test: 0.15 }, 3);
    const withSplit = table.rows.map((r) => ({ ...r, split: a.get(r.patientId) }));
    expect(findSplitLeakage(withSplit)).toEqual([]);
    const n = (s: string) => withSplit.filter((r) => r.split === s).length;
    expect(Math.abs(n("train") / table.rows.length - 0.7)).toBeLessThan(0.03);
    expect(n("train") + n("valid") + n("test")).toBe(table.rows.length);
  });

  it("refuses to train when splits share a patient, unless --allow-leakage (loudly, recorded in the card)", async () => {
    const [header, ...rows] = parseCsv(readFileSync(LABELS, "utf8"));
    const pid = header!.indexOf("PatientId");
    const split = header!.indexOf("Split");
    const trainPatient = rows.find((r) => r[split] === "train")![pid]!;
    const victim = rows.find((r) => r[split] === "test")!;
    victim[pid] = trainPatient;
    const leaky = join(tmp.dir, "leaky.csv");
    writeFileSync(leaky, toCsv(header!, rows));
    await expect(trainModel({ labels: leaky, images: IMAGES, model: start, out: join(tmp.dir, "never"), epochs: 1, seed: 1, cacheDir: cache, progress: false })).rejects.toThrow(LeakageError);
    const err: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await main(["node", "cxr", "train", "--labels", leaky, "--images", IMAGES, "--model", start, "--out", join(tmp.dir, "never"), "--epochs", "1"]);
    } finally {
      process.stderr.write = write;
    }
    expect(code).toBe(1);
    expect(err.join("")).toMatch(new RegExp(`test/train share 1 patient\\(s\\) \\(${trainPatient}\\).*--allow-leakage`));

    const logs: string[] = [];
    const r = await trainModel({ labels: leaky, images: IMAGES, model: start, out: join(tmp.dir, "leaky-model"), epochs: 1, seed: 1, cacheDir: cache, allowLeakage: true, progress: false, bootstrapIterations: 50, log: (l) => logs.push(l) });
    expect(logs.join("\n")).toContain("!!! WARNING: patient leakage");
    expect(r.card.training.summary).toContain("WARNING: trained with --allow-leakage");
  }, 300_000);

  it("improves validation mean AUROC over the untrained model, the loss falls, and the exported ONNX computes the trained head", async () => {
    const out = join(tmp.dir, "trained");
    const r = await trainModel({ labels: LABELS, images: IMAGES, model: start, out, epochs: 15, seed: 1, cacheDir: cache, patience: 100, progress: false, bootstrapIterations: 200, log: () => {} });
    const best = Math.max(...r.head.history.map((h) => h.validMeanAuroc));
    console.log(
      `train ${SIZE}px: valid mean AUROC untrained ${r.head.initialValidMeanAuroc.toFixed(4)} → best ${best.toFixed(4)} (epoch ${r.head.bestEpoch}); ` +
        `train loss ${r.head.initialTrainLoss.toFixed(4)} → ${r.head.history.at(-1)!.trainLoss.toFixed(4)}; test mean AUROC ${r.test.mean_auroc!.toFixed(4)}`,
    );
    expect(r.counts).toEqual({ train: 352, valid: 79, test: 89 });
    expect(best).toBeGreaterThan(r.head.initialValidMeanAuroc + 0.03);
    expect(r.valid.mean_auroc).toBeCloseTo(best, 6);
    expect(r.head.history.at(-1)!.trainLoss).toBeLessThan(r.head.initialTrainLoss * 0.9);

    // The card carries the training normalisation, Youden thresholds, a new Device UID and the metrics.
    const card = readModelCard(out);
    const startCard = readModelCard(start);
    expect(card.deviceUid).not.toBe(startCard.deviceUid);
    expect(card.input.mean[0]).toBe(r.input.mean[0]);
    expect(card.input.mean[0]).not.toBe(startCard.input.mean[0]);
    expect(card.labels.filter((l) => l.thresholdMethod.startsWith("Youden")).length).toBeGreaterThan(10);
    const m = card.training.metrics as { test: { labels: Record<string, { ci95: number[] }> } };
    expect(m.test.labels.Effusion!.ci95).toHaveLength(2);

    // Inference of the merged model on the card's preprocessing equals the trained head on the trunk features.
    const table = readLabelTable(LABELS);
    const paths = table.rows.filter((x) => x.split === "valid").slice(0, 4).map((x) => join(IMAGES, x.key));
    const trunk = await createTrunk(readModelWeights(join(start, "model.onnx")), card.input);
    const { features } = await extractFeatures(trunk, paths.map((path) => ({ path, copy: 0 })), { cacheDir: cache, progress: false });
    await trunk.close();
    const expected = predictHead(r.head.best, features);
    const clf = await Classifier.load(out, { threads: 2 });
    try {
      for (let i = 0; i < paths.length; i++) {
        const res = await clf.infer(await loadPresentationImage(paths[i]!));
        res.findings.forEach((f, j) => expect(Math.abs(f.probability - expected[i]![j]!)).toBeLessThan(1e-4));
      }
    } finally {
      await clf.close();
    }
  }, 600_000);

  it("resumes from a checkpoint to exactly the result of an uninterrupted run (deterministic under the seed)", async () => {
    const common = { labels: LABELS, images: IMAGES, model: start, seed: 7, normSample: 30, cacheDir: cache, patience: 100, progress: false, bootstrapIterations: 20, log: () => {} };
    const full = await trainModel({ ...common, out: join(tmp.dir, "full"), epochs: 6 });
    await trainModel({ ...common, out: join(tmp.dir, "resumed"), epochs: 3 });
    const resumed = await trainModel({ ...common, out: join(tmp.dir, "resumed"), epochs: 6, resume: true });
    expect(resumed.head.resumedFrom).toBe(3);
    expect(resumed.head.history.map((h) => h.trainLoss)).toEqual(full.head.history.map((h) => h.trainLoss));
    expect(Array.from(resumed.head.best.kernel)).toEqual(Array.from(full.head.best.kernel));
    expect(resumed.card.deviceUid).toBe(full.card.deviceUid);
  }, 300_000);
});

describe.runIf(has)("last-dense-block fine-tuning (tfjs cpu, cached block-5 inputs)", () => {
  const tmp = tempDir("cxr-lastblock-");
  afterAll(() => tmp.cleanup());

  it("trains dense block 5, the final BN and the head; everything below stays frozen", async () => {
    const [header, ...rows] = parseCsv(readFileSync(LABELS, "utf8"));
    const s = header!.indexOf("Split");
    const pick = (split: string, n: number) => rows.filter((r) => r[s] === split).slice(0, n);
    const labels = join(tmp.dir, "tiny.csv");
    writeFileSync(labels, toCsv(header!, [...pick("train", 8), ...pick("valid", 4), ...pick("test", 4)]));
    const start = join(tmp.dir, "start");
    initModelDir({ inputSize: SIZE, seed: 4, out: start });
    const out = join(tmp.dir, "out");
    const r = await trainFullNetwork({ labels, images: IMAGES, model: start, out, epochs: 1, seed: 1, batchSize: 4, backend: "cpu", scope: "last-block", cacheDir: join(tmp.dir, "cache"), progress: false, bootstrapIterations: 20, log: () => {} });
    expect(r.run.history).toHaveLength(1);
    expect(r.stepSeconds).toHaveLength(2);
    const before = readModelWeights(join(start, "model.onnx"));
    const after = readModelWeights(join(out, "checkpoints", "last.onnx"));
    const changed = (name: string) => before.get(name)!.data.some((v, i) => v !== after.get(name)!.data[i]);
    for (const name of ["conv5_block1_1_conv/kernel", "conv5_block16_2_conv/kernel", "conv5_block3_0_bn/gamma", "bn/beta", "predictions/kernel"]) expect(changed(name), name).toBe(true);
    for (const name of ["conv1/conv/kernel", "conv4_block24_2_conv/kernel", "pool4_conv/kernel", "pool4_bn/gamma", "bn/moving_mean"]) expect(changed(name), name).toBe(false);
    expect((readModelCard(out).training.metrics as { lastDenseBlockTrained: boolean }).lastDenseBlockTrained).toBe(true);
  }, 300_000);
});
