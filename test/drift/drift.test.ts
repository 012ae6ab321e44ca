import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import type { Browser } from "playwright-core";
import { inputProperties } from "../../src/drift/input.ts";
import { DriftMonitor, readDriftReference, type DriftObservation, type DriftReference } from "../../src/drift/monitor.ts";
import { categoricalShift, gammaQ, ks, psi } from "../../src/drift/psi.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { apiConfigSchema, priorityConfigSchema } from "../../src/config/worklist.ts";
import { extractHeader } from "../../src/intake/header.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer } from "../../src/worklist/server.ts";
import { artifactPath, launchChromium } from "../worklist/browser.ts";
import { MemoryStudyStore } from "../worklist/memory-store.ts";
import { ImageGate } from "../../src/gate/gate.ts";
import { loadPresentationImage, type PresentationImage } from "../../src/image/presentation.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { splitRows } from "../../src/gate/build.ts";
import { requireSharedData, SHARED_DICOM, SHARED_NIH } from "../helpers/shared-data.ts";
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

describe("categorical quantities, gate outcomes and per-day statistics", () => {
  it("PSI over category shares: the same mix is stable, a new manufacturer taking over is not", () => {
    const ref = [...Array<string>(60).fill("FUJIFILM"), ...Array<string>(40).fill("AGFA")];
    expect(categoricalShift(ref, [...Array<string>(30).fill("FUJIFILM"), ...Array<string>(20).fill("AGFA")]).psi).toBeLessThan(0.01);
    const shifted = categoricalShift(ref, [...Array<string>(10).fill("FUJIFILM"), ...Array<string>(40).fill("Carestream")]);
    expect(shifted.bins.labels).toEqual(["AGFA", "Carestream", "FUJIFILM"]);
    expect(shifted.bins.recent).toEqual([0, 0.8, 0.2]);
    expect(shifted.psi).toBeGreaterThan(1);
    expect(shifted.ks).toBeUndefined();
    expect(shifted.pValue).toBeLessThan(1e-6);
    // scipy.stats.chi2.sf(4.04, 2) = 0.1327; chi2.sf(10, 1) = 0.001565
    expect(gammaQ(1, 4.04 / 2)).toBeCloseTo(0.1327, 4);
    expect(gammaQ(0.5, 10 / 2)).toBeCloseTo(0.001565, 6);
  });

  it("buckets observations by UTC day (at most drift.days days) and reports gate failures per check", () => {
    const statistics = { width: 512, height: 512, mean: 0.5, std: 0.2, greyLevels: 200, clipped: 0 };
    const reference: DriftReference = { source: "synthetic", createdAt: "2026-01-01T00:00:00Z", values: { "image mean": Array.from({ length: 100 }, (_, i) => 0.3 + (0.4 * i) / 99) }, categories: { modality: Array<string>(100).fill("CR"), "gate outcome": Array<string>(100).fill("passed") }, unavailable: { manufacturer: "not available in the reference: no header" } };
    let now = new Date("2026-12-01T23:59:00Z");
    const monitor = new DriftMonitor({ reference, window: 50, days: 2, psiAlert: 0.25, ksAlpha: 0.001, minSamples: 10, now: () => now });
    const obs = (i: number, modality: string, gate: DriftObservation["gate"]): DriftObservation => ({ statistics: { ...statistics, mean: 0.3 + (0.4 * (i % 10)) / 9 }, input: { modality, manufacturer: "ACME" }, gate });
    for (let i = 0; i < 10; i++) monitor.observe(obs(i, "CR", "passed"));
    now = new Date("2026-12-02T00:01:00Z");
    for (let i = 0; i < 10; i++) monitor.observe(obs(i, "CR", "passed"));
    now = new Date("2026-12-03T08:00:00Z");
    for (let i = 0; i < 10; i++) monitor.observe(obs(i, "DX", i < 4 ? "inverted" : i < 5 ? "rotated" : "passed"));
    const st = monitor.status();
    expect(st.days.map((d) => [d.day, d.observed])).toEqual([["2026-12-02", 10], ["2026-12-03", 10]]);
    expect(st.days[0]!.quantities.modality!.alert).toBe(false);
    expect(st.days[1]!.quantities.modality!.alert).toBe(true);
    expect(st.days[1]!.gateFailures).toEqual({ inverted: 0.4, rotated: expect.closeTo(0.1, 9) });
    expect(st.days[1]!.quantities["gate outcome"]!.alert).toBe(true);
    expect(st.observed).toBe(30);
    expect(st.gateFailureRate).toBeCloseTo(5 / 30, 9);
    expect(st.quantities["image mean"]!.kind).toBe("numeric");
    expect(st.quantities.modality!.bins).toEqual({ labels: ["CR", "DX"], reference: [1, 0], recent: [2 / 3, 1 / 3] });
    expect(st.notInReference.manufacturer).toEqual({ reason: "not available in the reference: no header", n: 30, summary: { labels: ["ACME"], values: [1] } });
    expect(st.alerts.some((a) => /^modality: PSI \d+\.\d{3} > 0\.25 and chi-square p \S+ < 0\.001 over the last 30 studies$/.test(a))).toBe(true);
  });
});

describe.runIf(requireSharedData())("input properties from real DICOM files", () => {
  it("pixel spacing and bits stored from the file, manufacturer and modality from the kept header", () => {
    const ds = readDicom(join(SHARED_DICOM, "RG2_JPLL.dcm"), { withPixelData: false }).dataset;
    const p = inputProperties(extractHeader(ds).header, ds);
    expect(p.pixelSpacing).toBe(0.2);
    expect(p.bitsStored).toBe(10);
    expect(p.modality).toBe(String(ds.Modality));
    expect(p.manufacturer).toBe(ds.Manufacturer ? String(ds.Manufacturer) : undefined);
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
    // NIH PNGs have no DICOM header: said so, not invented; the gate's outcome is there for every image.
    expect(reference.categories!["gate outcome"]).toHaveLength(79);
    for (const q of ["manufacturer", "modality", "pixel spacing", "bits stored"]) expect(reference.unavailable![q]).toMatch(/^not available in the reference/);
    expect(reference.values["pixel spacing"]).toBeUndefined();

    const lines: string[] = [];
    const logger = pino({ level: "info" }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const classifier = await Classifier.load(model);
    const gate = await ImageGate.load();
    // What the pipeline does per decoded image: gate, then inference, then observe.
    const feed = async (monitor: DriftMonitor, img: PresentationImage) => {
      const g = await gate.check(img);
      if (!g.pass) return monitor.observe({ statistics: g.statistics, gate: g.check });
      const r = await classifier.infer(img);
      monitor.observe({ statistics: g.statistics, probabilities: Object.fromEntries(r.findings.map((f) => [f.label, f.probability])), gate: "passed" });
    };
    let browser: Browser | undefined;
    try {
      const test = splitRows(labels, join(SHARED_NIH, "images"), "test").slice(0, 60);
      const images = await Promise.all(test.map((r) => loadPresentationImage(r.path)));
      const registry = new Registry();
      const plain = new DriftMonitor({ reference, window: 60, days: 30, psiAlert: 0.25, ksAlpha: 0.001, minSamples: 30, logger, registry });
      for (const img of images) await feed(plain, img);
      const ok = plain.status();
      expect(ok.alerts, JSON.stringify(ok.quantities)).toEqual([]);

      const shiftedRegistry = new Registry();
      // Two UTC days of 30 studies each, so each day has its own PSI.
      let day = new Date("2026-12-01T12:00:00Z");
      const shifted = new DriftMonitor({ reference, window: 60, days: 30, psiAlert: 0.25, ksAlpha: 0.001, minSamples: 30, logger, registry: shiftedRegistry, now: () => day });
      for (const [i, img] of images.entries()) {
        if (i === 30) day = new Date("2026-12-02T12:00:00Z");
        await feed(shifted, { ...img, data: img.data.map((v) => v ** 0.8) });
      }
      const st = shifted.status();
      // re-windowed films are still chest films: the gate lets (most of) them through, and its failure rate is reported
      expect(st.gateFailureRate).toBeLessThan(0.5);
      expect(st.quantities["image mean"]!.psi).toBeGreaterThan(0.25);
      expect(st.alerts.join("\n")).toMatch(/^image mean: PSI \d+\.\d{3} > 0\.25 and KS \d\.\d{3} > 0\.\d{3} \(alpha 0\.001\) over the last \d+ studies$/m);
      expect(lines.some((l) => /"msg":"drift: image mean PSI \d+\.\d{3} > 0\.25 against /.test(l))).toBe(true);
      const text = await shiftedRegistry.metrics();
      expect(text).toMatch(/^cxr_drift_psi\{quantity="image mean"\} (\d+\.\d+)$/m);
      expect(Number(/^cxr_drift_psi\{quantity="image mean"\} (\S+)$/m.exec(text)![1])).toBeGreaterThan(0.25);
      expect(st.days.map((d) => d.day)).toEqual(["2026-12-01", "2026-12-02"]);
      for (const d of st.days) expect(d.quantities["image mean"]!.n).toBeGreaterThanOrEqual(30);

      // The /drift page in Chromium: plots as SVG, no CSP violation, the alert shown for the shifted set and none for the plain one.
      browser = await launchChromium();
      for (const [name, monitor] of [["plain", plain], ["shifted", shifted]] as const) {
        const api = createApiServer({
          store: new MemoryStudyStore(),
          config: { api: apiConfigSchema.parse({ tokens: ["drift-page-token-0123456789"] }), priority: priorityConfigSchema.parse({}) },
          metrics: createMetrics({ defaultMetrics: false }),
          logger: pino({ level: "silent" }),
          drift: () => monitor.status(),
        });
        const { url } = await api.listen(0, "127.0.0.1");
        try {
          const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
          const violations: string[] = [];
          page.on("console", (m) => /Content Security Policy/i.test(m.text()) && violations.push(m.text()));
          await page.addInitScript(() => document.addEventListener("securitypolicyviolation", (e) => console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`)));
          await page.goto(`${url}/drift?token=drift-page-token-0123456789`);
          expect(new URL(page.url()).search).toBe("");
          const section = page.locator('section[data-quantity="image mean"]');
          await section.waitFor();
          expect(await section.locator("svg.shares rect.ref").count()).toBeGreaterThanOrEqual(2);
          expect(await section.locator("svg.shares rect.cur").count()).toBeGreaterThanOrEqual(2);
          expect(await section.locator("svg.daily rect.day").count()).toBe(name === "shifted" ? 2 : 1);
          // The stylesheet applied (an external file under the CSP): current bars are blue.
          expect(await section.locator("svg.shares rect.cur").first().evaluate((el) => getComputedStyle(el).fill)).toBe("rgb(31, 111, 209)");
          expect(await page.locator('section[data-quantity="gate outcome"] svg.shares').count()).toBe(1);
          if (name === "shifted") {
            expect(await section.getAttribute("data-alert")).toBe("true");
            expect(await section.locator(".state").textContent()).toBe("ALERT");
            expect(await page.locator("#alerts li").allTextContents()).toContain(st.alerts.find((a) => a.startsWith("image mean:")));
          } else {
            expect(await page.locator("#alerts").textContent()).toBe("No alert.");
            expect(await section.getAttribute("data-alert")).toBe("false");
          }
          await page.screenshot({ path: artifactPath(`drift-page-${name}.png`), fullPage: true });
          expect(violations).toEqual([]);
          await page.close();
        } finally {
          await api.close();
        }
      }
      console.log(`image mean: test split PSI ${ok.quantities["image mean"]!.psi.toFixed(3)} KS ${ok.quantities["image mean"]!.ks!.toFixed(3)}; gamma 0.8 PSI ${st.quantities["image mean"]!.psi.toFixed(3)} KS ${st.quantities["image mean"]!.ks!.toFixed(3)}; per day ${st.days.map((d) => `${d.day} PSI ${d.quantities["image mean"]!.psi.toFixed(3)}`).join(", ")}; gate failure rate ${st.gateFailureRate}; alerts: ${st.alerts.join(" | ")}`);
    } finally {
      await browser?.close();
      await classifier.close();
      await gate.close();
    }
  }, 300_000);
});
