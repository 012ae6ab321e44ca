import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readModelCard } from "../../src/model/card.ts";
import { readModelWeights } from "../../src/model/model-dir.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { parseCsv, toCsv } from "../../src/training/dataset.ts";
import { requireMesa, spawnNodeWithMesa } from "../helpers/mesa.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const run = requireMesa() && requireSharedData();

describe.runIf(run)("cxr train --backend webgpu (whole network, tfjs-backend-webgpu on Dawn + Mesa lavapipe)", () => {
  const tmp = tempDir("cxr-gputrain-");
  afterAll(() => tmp.cleanup());

  it("trains every layer for one epoch of 2 steps at 32 px, batch 2, and exports the merged model", () => {
    const [header, ...rows] = parseCsv(readFileSync(join(SHARED_NIH, "labels.csv"), "utf8"));
    const s = header!.indexOf("Split");
    const pick = (split: string, n: number) => rows.filter((r) => r[s] === split).slice(0, n);
    const labels = join(tmp.dir, "tiny.csv");
    writeFileSync(labels, toCsv(header!, [...pick("train", 4), ...pick("valid", 2), ...pick("test", 2)]));
    const start = join(tmp.dir, "start");
    const out = join(tmp.dir, "trained");
    initModelDir({ inputSize: 32, seed: 3, out: start });
    // Dawn picks its Vulkan driver at start-up, so the Mesa environment goes to a child process.
    const args = ["bin/cxr.js", "train", "--backend", "webgpu", "--labels", labels, "--images", join(SHARED_NIH, "images"), "--model", start, "--out", out, "--epochs", "1", "--batch-size", "2"];
    const child = spawnNodeWithMesa(args, 400_000);
    expect(child.status, `${child.stdout}\n${child.stderr}`).toBe(0);
    expect(child.stderr).toContain('full-network training on tfjs backend "webgpu"');
    expect(child.stdout).toMatch(/whole network on webgpu, [\d.]+ images\/s per training step/);

    const card = readModelCard(out);
    const metrics = card.training.metrics as { wholeNetworkTrained: boolean; history: { trainLoss: number }[] };
    expect(metrics.wholeNetworkTrained).toBe(true);
    expect(metrics.history).toHaveLength(1);
    expect(Number.isFinite(metrics.history[0]!.trainLoss)).toBe(true);
    // Not only the head moved: the first convolution and a BN gamma deep in the trunk changed too
    // (the epoch's weights are in the checkpoint; the exported model is the best epoch by valid AUROC,
    // which on 2 valid images may well be the untrained one).
    const before = readModelWeights(join(start, "model.onnx"));
    const after = readModelWeights(join(out, "checkpoints", "last.onnx"));
    for (const name of ["conv1/conv/kernel", "conv3_block2_1_conv/kernel", "conv4_block7_0_bn/gamma", "predictions/kernel"]) {
      const a = before.get(name)!.data;
      const b = after.get(name)!.data;
      expect(a.some((v, i) => v !== b[i]), name).toBe(true);
    }
    // BN moving statistics are not trained (inference-mode BN).
    expect(Array.from(after.get("bn/moving_variance")!.data)).toEqual(Array.from(before.get("bn/moving_variance")!.data));
    expect(card.input.mean[0]).not.toBe(readModelCard(start).input.mean[0]);
  }, 420_000);
});
