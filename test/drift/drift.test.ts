import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { DriftMonitor, readDriftReference } from "../../src/drift/monitor.ts";
import { ks, psi } from "../../src/drift/psi.ts";
import { ImageGate } from "../../src/gate/gate.ts";
import { loadPresentationImage, type PresentationImage } from "../../src/image/presentation.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { splitRows } from "../../src/gate/build.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

describe("PSI and KS", () => {
  const ref = Array.from({ length: 500 }, (_, i) => (i * 7919) % 500 / 500);
  it("about zero for the same distribution, large for a shifted one", () => {
    const same = Array.from({ length: 200 }, (_, i) => (i * 104729) % 200 / 200);
    const shifted = same.map((v) => Math.min(1, v * 0.5 + 0.45));
    expect(psi(ref, same)).toBeLessThan(0.05);
    expect(ks(ref, same)).toBeLessThan(0.05);
    expect(psi(ref, shifted)).toBeGreaterThan(1);
    expect(ks(ref, shifted)).toBeGreaterThan(0.4);
  });
});

describe.runIf(requireSharedData())("drift monitoring: test-split images pass, re-windowed copies raise the alert", () => {
  const tmp = tempDir("cxr-drift-");
  afterAll(() => tmp.cleanup());

  it("reference from the valid split; the test split stays under the threshold, gamma 0.8 copies pass the gate but cross it, with a log warning and gauges", async () => {
    const model = join(tmp.dir, "model");
    initModelDir({ inputSize: 64, seed: 3, out: model });
    const refPath = join(tmp.dir, "drift-reference.json");
    const labels = join(SHARED_NIH, "labels.csv");
    expect(await main(["node", "cxr", "drift-reference", "--labels", labels, "--images", join(SHARED_NIH, "images"), "--split", "valid", "--model", model, "--out", refPath])).toBe(0);
    const reference = readDriftReference(refPath);
    expect(reference.values["image mean"]).toHaveLength(79);
    expect(reference.values.Effusion).toHaveLength(79);

    const lines: string[] = [];
    const logger = pino({ level: "info" }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const classifier = await Classifier.load(model);
    const gate = await ImageGate.load();
    // What the pipeline does per decoded image: gate, then inference, then observe.
    const feed = async (monitor: DriftMonitor, img: PresentationImage) => {
      const g = await gate.check(img);
      if (!g.pass) return monitor.observe({ statistics: g.statistics, gatePassed: false });
      const r = await classifier.infer(img);
      monitor.observe({ statistics: g.statistics, probabilities: Object.fromEntries(r.findings.map((f) => [f.label, f.probability])), gatePassed: true });
    };
    try {
      const test = splitRows(labels, join(SHARED_NIH, "images"), "test").slice(0, 60);
      const images = await Promise.all(test.map((r) => loadPresentationImage(r.path)));
      const registry = new Registry();
      const plain = new DriftMonitor({ reference, window: 60, psiAlert: 0.25, ksAlpha: 0.001, minSamples: 30, logger, registry });
      for (const img of images) await feed(plain, img);
      const ok = plain.status();
      expect(ok.alerts, JSON.stringify(ok.quantities)).toEqual([]);

      const shiftedRegistry = new Registry();
      const shifted = new DriftMonitor({ reference, window: 60, psiAlert: 0.25, ksAlpha: 0.001, minSamples: 30, logger, registry: shiftedRegistry });
      for (const img of images) await feed(shifted, { ...img, data: img.data.map((v) => v ** 0.8) });
      const st = shifted.status();
      // re-windowed films are still chest films: the gate lets (most of) them through, and its failure rate is reported
      expect(st.gateFailureRate).toBeLessThan(0.5);
      expect(st.quantities["image mean"]!.psi).toBeGreaterThan(0.25);
      expect(st.alerts.join("\n")).toMatch(/^image mean: PSI \d+\.\d{3} > 0\.25 and KS \d\.\d{3} > 0\.\d{3} \(alpha 0\.001\) over the last \d+ studies$/m);
      expect(lines.some((l) => /"msg":"drift: image mean PSI \d+\.\d{3} > 0\.25 against /.test(l))).toBe(true);
      const text = await shiftedRegistry.metrics();
      expect(text).toMatch(/^cxr_drift_psi\{quantity="image mean"\} (\d+\.\d+)$/m);
      expect(Number(/^cxr_drift_psi\{quantity="image mean"\} (\S+)$/m.exec(text)![1])).toBeGreaterThan(0.25);
      console.log(`image mean: test split PSI ${ok.quantities["image mean"]!.psi.toFixed(3)} KS ${ok.quantities["image mean"]!.ks.toFixed(3)}; gamma 0.8 PSI ${st.quantities["image mean"]!.psi.toFixed(3)} KS ${st.quantities["image mean"]!.ks.toFixed(3)}; gate failure rate ${st.gateFailureRate}; alerts: ${st.alerts.join(" | ")}`);
    } finally {
      await classifier.close();
      await gate.close();
    }
  }, 240_000);
});
