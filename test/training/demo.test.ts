import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { readModelCard } from "../../src/model/card.ts";
import { DEMO_DIR, type DemoSpec } from "../../src/training/demo.ts";
import { tempDir } from "../helpers/tmp.ts";

describe("cxr model demo", () => {
  const tmp = tempDir("cxr-demo-");
  afterAll(() => tmp.cleanup());

  it("rebuilds the trained demo model from the committed seed + head + card, byte-identical weights", async () => {
    const spec = JSON.parse(readFileSync(join(DEMO_DIR, "demo.json"), "utf8")) as DemoSpec;
    // Only small files are committed.
    expect(statSync(join(DEMO_DIR, spec.head.file)).size).toBe((1024 * 14 + 14) * 4);
    const out = join(tmp.dir, "demo");
    expect(await main(["node", "cxr", "model", "demo", "--out", out])).toBe(0);
    const card = readModelCard(out);
    expect(card.weightsSha256).toBe(spec.card.weightsSha256);
    expect(card.deviceUid).toBe(spec.card.deviceUid);
    expect(card.input.size).toBe(224);
    expect(card.labels.every((l) => l.thresholdMethod.startsWith("Youden") || l.thresholdMethod.startsWith("default"))).toBe(true);
    const m = card.training.metrics as { test: { mean_auroc: number }; untrained: { validMeanAuroc: number }; valid: { mean_auroc: number } };
    expect(m.valid.mean_auroc).toBeGreaterThan(m.untrained.validMeanAuroc);
    expect(m.test.mean_auroc).toBeGreaterThan(0);
  }, 120_000);
});
