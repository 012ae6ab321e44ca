import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { atThreshold, parseTarget, thresholdFor, wilsonCi } from "../../src/evaluation/operating-point.ts";
import { readModelCard } from "../../src/model/card.ts";
import type { CalibrationReport } from "../../src/evaluation/calibrate.ts";
import type { EvaluationMetrics } from "../../src/evaluation/report.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

describe("operating points", () => {
  const truth = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
  const score = [0.9, 0.8, 0.3, 0.6, 0.7, 0.2, 0.1, 0.4, 0.35, 0.05];

  it("the highest threshold reaching a sensitivity, the lowest reaching a specificity", () => {
    expect(thresholdFor(truth, score, { metric: "sensitivity", value: 0.75 })).toMatchObject({ threshold: 0.6, sensitivity: 0.75, tp: 3, fp: 1 });
    expect(thresholdFor(truth, score, { metric: "sensitivity", value: 1 })).toMatchObject({ threshold: 0.3, sensitivity: 1, specificity: 3 / 6 });
    const spec = thresholdFor(truth, score, { metric: "specificity", value: 5 / 6 })!;
    expect(spec.specificity).toBeCloseTo(5 / 6);
    expect(spec.threshold).toBeGreaterThan(0.4);
    expect(spec.threshold).toBeLessThan(0.40001);
    expect(thresholdFor([0, 0], [0.1, 0.2], { metric: "sensitivity", value: 0.9 })).toBeUndefined();
  });

  it("Wilson intervals and target parsing", () => {
    const [lo, hi] = wilsonCi(8, 10)!;
    expect(lo).toBeCloseTo(0.4902, 3);
    expect(hi).toBeCloseTo(0.9433, 3);
    expect(wilsonCi(0, 0)).toBeNull();
    expect(atThreshold(truth, score, 0.5)).toMatchObject({ tp: 3, fn: 1, tn: 5, fp: 1 });
    expect(parseTarget("sensitivity=0.95")).toEqual({ metric: "sensitivity", value: 0.95 });
    expect(() => parseTarget("recall=0.9")).toThrow(/expected sensitivity=<0..1>/);
  });
});

describe.runIf(requireSharedData())("cxr calibrate on the shared valid split, cxr eval on the test split", () => {
  const tmp = tempDir("cxr-calibrate-");
  afterAll(() => tmp.cleanup());

  it("moves the demo model's thresholds to sensitivity 0.95 on valid, records how, and eval reports the sensitivity reached on test", async () => {
    const demo = join(tmp.dir, "demo");
    expect(await main(["node", "cxr", "model", "demo", "--out", demo])).toBe(0);
    const before = readModelCard(demo);
    const labels = join(SHARED_NIH, "labels.csv");
    const images = join(SHARED_NIH, "images");
    const out = join(tmp.dir, "cal");
    expect(await main(["node", "cxr", "calibrate", "--labels", labels, "--images", images, "--split", "valid", "--model", demo, "--out", out, "--target", "sensitivity=0.95", "--per-label", "Pneumothorax=sensitivity:1"])).toBe(0);
    const report = JSON.parse(readFileSync(join(out, "calibration.json"), "utf8")) as CalibrationReport;
    expect(report.images).toBe(79);
    const card = readModelCard(join(out, "model"));
    expect(card.deviceUid).toBe(before.deviceUid);
    expect(card.version).toMatch(new RegExp(`^${before.version.replace(/[.+]/g, "\\$&")}\\+site\\.\\d{8}T\\d{6}$`));
    expect(card.operatingPoints).toMatchObject({ previousVersion: before.version, target: "sensitivity >= 0.95; Pneumothorax: sensitivity >= 1", data: "labels.csv (Split = valid), 79 images" });
    const moved = card.labels.filter((l, j) => l.threshold !== before.labels[j]!.threshold);
    expect(moved.length).toBeGreaterThan(5);
    for (const m of report.moves) {
      if (!m.chosen) {
        expect(m.note).toMatch(/threshold kept/);
        continue;
      }
      expect(m.chosen.sensitivity!).toBeGreaterThanOrEqual(m.label === "Pneumothorax" ? 1 : 0.95);
      const l = card.labels.find((x) => x.name === m.label)!;
      expect(l.threshold).toBe(m.chosen.threshold);
      expect(l.thresholdMethod).toMatch(/^cxr calibrate: sensitivity >= (0\.95|1) on labels\.csv \(Split = valid\), 79 images; achieved sensitivity \d\.\d{3} \(95% CI \d\.\d{3}–\d\.\d{3}\), specificity/);
    }
    const md = readFileSync(join(out, "calibration.md"), "utf8");
    expect(md).toMatch(/\| Effusion \| sensitivity >= 0\.95 \| \d+\/\d+ \| 0\.\d{4} \| 0\.\d{4} \| [+−]\d\.\d{4} \|/);

    // The new card on the held-out test split: eval reports sensitivity/specificity at its thresholds.
    const evalOut = join(tmp.dir, "eval-test");
    expect(await main(["node", "cxr", "eval", "--labels", labels, "--images", images, "--split", "test", "--model", join(out, "model"), "--out", evalOut, "--bootstrap", "50"])).toBe(0);
    const metrics = JSON.parse(readFileSync(join(evalOut, "metrics.json"), "utf8")) as EvaluationMetrics;
    const eff = metrics.labels.Effusion!;
    expect(eff.operating_point!.threshold).toBe(card.labels.find((l) => l.name === "Effusion")!.threshold);
    expect(eff.operating_point!.tp + eff.operating_point!.fn).toBe(eff.n_pos);
    expect(readFileSync(join(evalOut, "report.html"), "utf8")).toContain("Sensitivity (Wilson 95% CI)");
    // printed for the closing note: the sensitivity reached on test at the valid-chosen points
    console.log(Object.entries(metrics.labels).map(([l, m]) => `${l}: n_pos ${m.n_pos} sens ${m.operating_point?.sensitivity?.toFixed(3)} spec ${m.operating_point?.specificity?.toFixed(3)}`).join("\n"));
  }, 300_000);
});
