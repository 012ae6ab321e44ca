/**
 * The viewer on the real plugin: `cxr serve` (model from `cxr model init`) receives test1.dcm by
 * dcmtk storescu, triages it and exports SR + heatmap Secondary Captures + Parametric Maps to a real Orthanc, which
 * also holds the radiograph. The page, served by the service at /viewer/, then shows the radiograph
 * from Orthanc (through the service's DICOMweb proxy /viewer/dicom-web) with the service's real GradCAM
 * heatmaps, and, with the service's API unreachable, the service's real SR and Parametric Maps from Orthanc.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SOP_CLASS } from "../../src/config/service.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { freePort } from "../../src/peers/ports.ts";
import { PARAMETRIC_MAP_STORAGE } from "../../src/results/pm/map.ts";
import { readParametricMap } from "../../src/results/pm/read.ts";
import { DEFAULT_HEAT_THRESHOLD } from "../../src/viewer-extension/lib/colormap.ts";
import { ensureViewerBuilt } from "../../src/viewer-extension/index.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { serve } from "../service/helpers.ts";
import { brightBox, hottestPoint, launchChromium, meanDiffInDisc, openViewer, predictedHottest, shoot, type Raster, type RenderMode, ARTIFACTS } from "./harness.ts";

const CXR = join(process.cwd(), "bin", "cxr.js");
const TEST1 = join(SHARED_DICOM, "test1.dcm");
const TEST1_STUDY = "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708";
const TOKEN = "viewer-service-token-0123456789";

interface ApiFinding { label: string; probability: number; positive: boolean }
interface ApiDetail { state: string; priority: string; findings?: ApiFinding[]; heatmaps: { label: string; url: string }[]; outputs?: { sr?: string; sc: string[]; pm: string[] } }

async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined>, log: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}; see ${log}:\n${readFileSync(log, "utf8").split("\n").slice(-20).join("\n")}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const api = async <T>(base: string, path: string): Promise<T> => {
  const r = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return (await r.json()) as T;
};

describe.runIf(requireSharedData())("viewer on the real plugin (cxr serve) and Orthanc", () => {
  const tmp = tempDir("cxr-viewer-service-");
  const log = join(tmp.dir, "serve.log");
  let orthanc: OrthancHandle;
  let service: ChildProcess;
  let serviceUrl: string;
  let detail: ApiDetail;

  beforeAll(async () => {
    execFileSync(process.execPath, [CXR, "model", "init", "--seed", "7", "--input-size", "224", "--out", join(tmp.dir, "model")], { stdio: "ignore" });
    [orthanc] = await Promise.all([startOrthanc({ dir: join(tmp.dir, "orthanc") }), ensureViewerBuilt()]);
    const config = join(tmp.dir, "cxr.yaml");
    // The NIH files are radiographs wrapped as Secondary Capture (Modality DX): this site accepts that SOP class too.
    const sopClasses = [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING, SOP_CLASS.SECONDARY_CAPTURE];
    writeFileSync(
      config,
      `dicom:\n  acceptedSopClasses: [${sopClasses.map((c) => `"${c}"`).join(", ")}]\nintake:\n  singleImageImmediately: true\npipeline:\n  concurrency: 1\napi:\n  pacsDicomWebUrl: ${orthanc.httpUrl}/dicom-web\n`,
    );
    // Ports 0: the service takes free ones and says which in its "listener ready" line.
    const served = await serve(config, log, ["--data-dir", join(tmp.dir, "data"), "--model", join(tmp.dir, "model"), "--port", "0", "--ae-title", "CXR_TRIAGE",
      "--http-port", "0", "--api-token", TOKEN, "--destination", `${orthanc.aet}@127.0.0.1:${orthanc.dicomPort}`]);
    service = served.child;
    const dicomPort = served.dicomPort;
    serviceUrl = served.httpUrl!;

    // The PACS holds the radiograph; the modality (here storescu) also sends it to the plugin.
    execFileSync("storescu", ["-aec", orthanc.aet, "127.0.0.1", String(orthanc.dicomPort), TEST1]);
    execFileSync("storescu", ["-aec", "CXR_TRIAGE", "127.0.0.1", String(dicomPort), TEST1]);
    detail = await waitFor("study exported", 180_000, async () => {
      const d = await api<ApiDetail>(serviceUrl, `/api/studies/${TEST1_STUDY}`);
      return d.state === "exported" ? d : undefined;
    }, log);
    // The exported SR is in Orthanc.
    await waitFor("SR in Orthanc", 30_000, async () => {
      const r = await fetch(`${orthanc.httpUrl}/dicom-web/studies/${TEST1_STUDY}/series?Modality=SR`, { headers: { Accept: "application/dicom+json" } });
      return r.status === 200 && ((await r.json()) as unknown[]).length > 0 ? true : undefined;
    }, log);
  });

  afterAll(async () => {
    if (service && service.exitCode === null) {
      const exited = new Promise((r) => service.once("exit", r));
      service.kill("SIGINT");
      await exited;
    }
    await orthanc?.stop();
    tmp.cleanup();
  });

  describe.each<RenderMode>(["webgl", "cpu"])("%s rendering", (mode) => {
    let browser: Browser;
    let page: Page;
    beforeAll(async () => {
      browser = await launchChromium(mode);
      page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    });
    afterAll(async () => browser?.close());

    it("overlays the service's GradCAM heatmaps on the radiograph from Orthanc", async () => {
      expect(detail.findings).toHaveLength(14);
      expect(detail.heatmaps.length).toBeGreaterThanOrEqual(2);
      await openViewer(page, `${serviceUrl}/viewer/?studyInstanceUid=${TEST1_STUDY}&token=${TOKEN}`);
      expect(await page.evaluate(() => [document.body.dataset.renderer, document.body.dataset.sourceFrom])).toEqual([mode === "webgl" ? "gpu" : "cpu", "sr"]);
      const names = await page.locator(".cxr-finding-list button").evaluateAll((bs) => bs.map((b) => b.getAttribute("aria-label")));
      expect(names).toEqual([...detail.findings!].sort((a, b) => b.probability - a.probability).map((f) => f.label));
      expect(await page.locator(".cxr-priority").getAttribute("data-priority")).toBe(detail.priority);
      expect(await page.locator(".cxr-priority").textContent()).toMatch(new RegExp(`^Worklist priority: ${detail.priority.toUpperCase()}`));

      await page.getByRole("checkbox", { name: "Overlay" }).uncheck();
      await page.waitForFunction(() => document.body.dataset.overlayVisible === "false");
      const off = await shoot(page, `service-${mode}-off`);
      const box = brightBox(off);
      const w = box.x1 - box.x0 + 1;
      await page.getByRole("checkbox", { name: "Overlay" }).check();
      await page.getByRole("slider", { name: "Opacity" }).fill("60");
      await page.waitForFunction(() => document.body.dataset.overlayOpacity === "0.6");

      // Two findings' heatmaps (the service's own PNGs): the hottest screen region is where each heatmap peaks,
      // and pixels where the heat is below the threshold are untouched.
      const shown: Raster[] = [];
      for (const h of detail.heatmaps.slice(0, 2)) {
        await page.getByRole("button", { name: h.label, exact: true }).click();
        await page.waitForFunction((l) => document.body.dataset.overlayLabel === l, h.label);
        const on = await shoot(page, `service-${mode}-${h.label}-60`);
        shown.push(on);
        const png = PNG.sync.read(Buffer.from(await (await fetch(`${serviceUrl}${h.url}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).arrayBuffer()));
        const want = predictedHottest(png, DEFAULT_HEAT_THRESHOLD);
        const got = hottestPoint(on, off);
        expect(Math.hypot(got.x - (box.x0 + want.fx * w), got.y - (box.y0 + want.fy * w))).toBeLessThan(0.03 * w);
        // Cold: sample the heatmap on a grid, compare screen pixels where it is < 0.1 (transparent) and > 0.9.
        let cold = 0, coldN = 0, hot = 0, hotN = 0;
        for (let gy = 0.05; gy < 1; gy += 0.1) {
          for (let gx = 0.05; gx < 1; gx += 0.1) {
            const heat = png.data[(Math.floor(gy * png.height) * png.width + Math.floor(gx * png.width)) * 4]! / 255;
            const d = meanDiffInDisc(on, off, box.x0 + gx * w, box.y0 + gy * w, 2);
            if (heat < 0.1) (cold += d), coldN++;
            if (heat > 0.9) (hot += d), hotN++;
          }
        }
        if (coldN) expect(cold / coldN).toBeLessThan(1);
        if (hotN) expect(hot / hotN).toBeGreaterThan(30);
        expect(coldN + hotN).toBeGreaterThan(0);
      }
      // Switching findings changed the picture.
      let changed = 0;
      for (let i = 0; i < shown[0]!.data.length; i += 4) if (Math.abs(shown[0]!.data[i]! - shown[1]!.data[i]!) > 10) changed++;
      expect(changed / (shown[0]!.width * shown[0]!.height)).toBeGreaterThan(0.01);
      await page.screenshot({ path: join(ARTIFACTS, `service-${mode}-page.png`) });
    });

    it("the Opacity slider blends the real heatmap monotonically", async () => {
      const off = await (async () => {
        await page.getByRole("checkbox", { name: "Overlay" }).uncheck();
        await page.waitForFunction(() => document.body.dataset.overlayVisible === "false");
        const r = await shoot(page, `service-${mode}-off-2`);
        await page.getByRole("checkbox", { name: "Overlay" }).check();
        return r;
      })();
      const box = brightBox(off);
      const full = await shoot(page, `service-${mode}-tmp`);
      const hotSpot = hottestPoint(full, off);
      const diffs: number[] = [];
      for (const v of [0, 30, 60, 90]) {
        await page.getByRole("slider", { name: "Opacity" }).fill(String(v));
        await page.waitForFunction((o) => document.body.dataset.overlayOpacity === String(o), v / 100);
        diffs.push(meanDiffInDisc(await shoot(page, `service-${mode}-opacity-${v}`), off, hotSpot.x, hotSpot.y, 0.02 * (box.x1 - box.x0)));
      }
      expect(diffs[0]).toBeLessThan(0.5);
      for (let i = 1; i < diffs.length; i++) expect(diffs[i]!).toBeGreaterThan(diffs[i - 1]! + 5);
    });
  });

  it("shows the service's SR and overlays its Parametric Maps from Orthanc when the plugin's API is unreachable", async () => {
    // the maps the service exported are in Orthanc
    expect(detail.outputs!.pm.length).toBeGreaterThan(0);
    const maps = await waitFor("Parametric Maps in Orthanc", 30_000, async () => {
      const r = await fetch(`${orthanc.httpUrl}/dicom-web/studies/${TEST1_STUDY}/instances?SOPClassUID=${PARAMETRIC_MAP_STORAGE}`, { headers: { Accept: "application/dicom+json" } });
      const list = r.status === 200 ? ((await r.json()) as Record<string, { Value?: string[] }>[]) : [];
      return list.length === detail.outputs!.pm.length ? list : undefined;
    }, log);
    const browser = await launchChromium("cpu");
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
      const closed = `http://127.0.0.1:${await freePort()}`;
      await openViewer(page, `${serviceUrl}/viewer/?studyInstanceUid=${TEST1_STUDY}&token=${TOKEN}&api=${encodeURIComponent(closed)}`, { blockedOrigin: closed });
      await page.screenshot({ path: join(ARTIFACTS, "service-sr-fallback-page.png") });
      const shown = await page.locator(".cxr-finding-list button").evaluateAll((bs) => bs.map((b) => [b.getAttribute("aria-label"), b.querySelector(".prob")!.textContent]));
      const expected = [...detail.findings!].sort((a, b) => b.probability - a.probability);
      expect(shown).toEqual(expected.map((f) => [f.label, `${(f.probability * 100).toFixed(1)}%`]));
      expect(await page.getByText(/^Findings read from the Structured Report/).textContent()).toContain(detail.outputs!.sr!);
      expect(await page.getByText(/^Heatmaps read from the plugin's Parametric Maps/).count()).toBe(1);
      expect(await page.locator(".cxr-priority").textContent()).toBe("Worklist priority: not available (only the plugin ranks studies)");

      // The overlay is the map's: drawn for a mapped finding, its hot spot where the map (read from Orthanc by Node) peaks.
      const sop = maps[0]!["00080018"]!.Value![0]!;
      const [found] = await orthanc.rest<{ ID: string }[]>("/tools/lookup", { method: "POST", body: sop });
      const mapPath = join(tmp.dir, "pm-from-orthanc.dcm");
      writeFileSync(mapPath, await orthanc.bytes(`/instances/${found!.ID}/file`));
      const map = readParametricMap(mapPath);
      await page.getByRole("checkbox", { name: "Overlay" }).uncheck();
      await page.waitForFunction(() => document.body.dataset.overlayVisible === "false");
      const off = await shoot(page, "service-pm-off");
      await page.getByRole("checkbox", { name: "Overlay" }).check();
      await page.getByRole("slider", { name: "Opacity" }).fill("60");
      await page.getByRole("button", { name: map.label, exact: true }).click();
      await page.waitForFunction((l) => document.body.dataset.overlayLabel === l, map.label);
      const on = await shoot(page, "service-pm-on");
      const box = brightBox(off);
      const w = box.x1 - box.x0 + 1;
      const raster = { width: map.columns, height: map.rows, data: new Uint8Array(map.values.length * 4) };
      map.values.forEach((v, i) => (raster.data[i * 4] = Math.round(Math.min(1, Math.max(0, v)) * 255)));
      const want = predictedHottest(raster as unknown as PNG, DEFAULT_HEAT_THRESHOLD);
      const got = hottestPoint(on, off);
      expect(Math.hypot(got.x - (box.x0 + want.fx * w), got.y - (box.y0 + want.fy * w))).toBeLessThan(0.03 * w);
    } finally {
      await browser.close();
    }
  });
});
