/**
 * The viewer page against a real Orthanc holding real chest radiographs, with the plugin's routes
 * served by a stand-in (see harness.ts) whose heatmaps have one known peak each, in both of
 * Cornerstone's rendering paths (WebGL on SwiftShader, and CPU with WebGL disabled).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPresentationImage } from "../../src/image/presentation.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { writeResultObjects } from "../../src/results/write.ts";
import { freePort } from "../../src/peers/ports.ts";
import { ensureViewerBuilt } from "../../src/viewer-extension/index.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { syntheticCard, syntheticResult } from "../results/synthetic.ts";
import {
  brightBox,
  fakeStudy,
  hottestPoint,
  launchChromium,
  lum,
  meanDiffInDisc,
  openViewer,
  shoot,
  startPluginStandIn,
  type KnownPeak,
  type PluginStandIn,
  type Raster,
  type RenderMode,
  ARTIFACTS,

} from "./harness.ts";

const TEST1 = join(SHARED_DICOM, "test1.dcm");
const RSNA_M2 = join(SHARED_DICOM, "rsna_cr_jpeg_baseline.dcm");
const RSNA_M1 = join(SHARED_DICOM, "rsna_cr_jpeg_baseline_fake_monochrome1.dcm");
const TEST1_STUDY = "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708";
const RSNA_STUDY = "1.2.276.0.7230010.3.1.2.8323329.6904.1517875201.850818";
const TEST1_SOP = "1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888";

const PEAKS: Record<string, KnownPeak> = {
  Cardiomegaly: { px: 0.62, py: 0.6, sigma: 0.06 },
  Effusion: { px: 0.25, py: 0.78, sigma: 0.06 },
};

const hasData = requireSharedData();
const SR_RESULT = syntheticResult(syntheticCard(), { Pneumothorax: 0.77, Mass: 0.64, Nodule: 0.31 });
let orthanc: OrthancHandle;
let plugin: PluginStandIn;
let tmp: ReturnType<typeof tempDir>;

async function putRsna(orthancHandle: OrthancHandle, file: string): Promise<void> {
  const found = await orthancHandle.rest<{ ID: string; Type: string }[]>("/tools/lookup", { body: RSNA_STUDY });
  for (const f of found.filter((x) => x.Type === "Study")) await orthancHandle.rest(`/studies/${f.ID}`, { method: "DELETE" });
  await orthancHandle.rest("/instances", { body: readFileSync(file) });
}

describe.skipIf(!hasData)("viewer page", () => {
  beforeAll(async () => {
    tmp = tempDir("cxr-viewer-");
    const [o] = await Promise.all([startOrthanc({ dir: join(tmp.dir, "orthanc") }), ensureViewerBuilt()]);
    orthanc = o;
    // A second radiograph in the same study, stored first (test3's pixels under test1's study): the viewer must
    // show the one the plugin's SR is about, not just the study's first image.
    const decoy = join(tmp.dir, "decoy.dcm");
    writeFileSync(decoy, readFileSync(join(SHARED_DICOM, "test3.dcm")));
    execFileSync("dcmodify", ["-nb", "-m", `(0020,000d)=${TEST1_STUDY}`, "-m", "(0020,000e)=2.25.77001", "-m", "(0008,0018)=2.25.77002", decoy]);
    await orthanc.rest("/instances", { body: readFileSync(decoy) });
    await orthanc.rest("/instances", { body: readFileSync(TEST1) });
    // The plugin's own result objects for test1 are in the PACS study too (SR + OT Secondary Captures), as after
    // export: the viewer must still pick the radiograph, and can fall back to the SR.
    const written = writeResultObjects({ sourcePath: TEST1, image: await loadPresentationImage(TEST1), result: SR_RESULT, outDir: join(tmp.dir, "results"), basename: "test1" });
    for (const f of [written.sr.path, ...written.sc.map((x) => x.path)]) await orthanc.rest("/instances", { body: readFileSync(f) });
    plugin = await startPluginStandIn(`${orthanc.httpUrl}/dicom-web`);
    plugin.studies.set(TEST1_STUDY, { ...fakeStudy(TEST1_STUDY, { width: 1024, height: 1024 }, PEAKS), srSopInstanceUid: written.sr.sopInstanceUid });
    plugin.studies.set(RSNA_STUDY, fakeStudy(RSNA_STUDY, { width: 1024, height: 1024 }, { Pneumonia: { px: 0.3, py: 0.4, sigma: 0.05 } }));
  });
  afterAll(async () => {
    await plugin?.close();
    await orthanc?.stop();
    tmp?.cleanup();
  });

  describe.each<RenderMode>(["webgl", "cpu"])("%s rendering", (mode) => {
    let browser: Browser;
    let page: Page;
    let off: Raster;
    let box: ReturnType<typeof brightBox>;
    const frameRequests: string[] = [];
    const screen = (p: KnownPeak) => ({ x: box.x0 + p.px * (box.x1 - box.x0 + 1), y: box.y0 + p.py * (box.y1 - box.y0 + 1) });
    const boxW = () => box.x1 - box.x0 + 1;

    beforeAll(async () => {
      browser = await launchChromium(mode);
      page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
      page.on("request", (r) => r.url().includes("/frames/") && frameRequests.push(r.url()));
      await openViewer(page, `${plugin.url}/viewer/?studyInstanceUid=${TEST1_STUDY}&token=${plugin.token}`);
    });
    afterAll(async () => {
      await browser?.close();
    });

    it(`renders test1.dcm over DICOMweb with the ${mode} path, windowed like dcmtk`, async () => {
      expect(await page.evaluate(() => document.body.dataset.renderer)).toBe(mode === "webgl" ? "gpu" : "cpu");
      // What the browser offers: software WebGL (SwiftShader) in one run, no WebGL at all in the other.
      const gl = await page.evaluate(() => {
        const ctx = document.createElement("canvas").getContext("webgl2");
        const info = ctx?.getExtension("WEBGL_debug_renderer_info");
        return ctx ? String(info ? ctx.getParameter(info.UNMASKED_RENDERER_WEBGL) : ctx.getParameter(ctx.RENDERER)) : null;
      });
      if (mode === "webgl") expect(gl).toMatch(/SwiftShader/i);
      else expect(gl).toBeNull();
      expect(frameRequests.some((u) => u.includes(`/viewer/dicom-web/studies/${TEST1_STUDY}/series/`))).toBe(true);
      // test1, the image the SR is about, although the study's first radiograph is another one.
      expect(await page.evaluate(() => [document.body.dataset.sopInstanceUid, document.body.dataset.sourceFrom])).toEqual([TEST1_SOP, "sr"]);
      await page.getByRole("checkbox", { name: "Overlay" }).uncheck();
      await page.waitForFunction(() => document.body.dataset.overlayVisible === "false");
      off = await shoot(page, `${mode}-test1-overlay-off`);
      await page.getByRole("checkbox", { name: "Overlay" }).check();
      await page.screenshot({ path: join(ARTIFACTS, `${mode}-test1-page.png`) });
      await page.getByRole("checkbox", { name: "Overlay" }).uncheck();

      // The Cornerstone canvas fills the viewport at device resolution.
      const canvas = await page.evaluate(() => {
        const c = document.querySelector<HTMLCanvasElement>("#viewport canvas:not(.cxr-triage-heatmap)")!;
        const host = document.getElementById("viewport")!;
        return { w: c.width, h: c.height, cw: host.clientWidth, ch: host.clientHeight, dpr: devicePixelRatio };
      });
      expect(canvas.w).toBe(Math.round(canvas.cw * canvas.dpr));
      expect(canvas.h).toBe(Math.round(canvas.ch * canvas.dpr));

      // The square 1024×1024 image is fitted and centred: a square filling the viewport's short side (Cornerstone's
      // WebGL camera leaves a margin of about 1 %, its CPU path none).
      box = brightBox(off);
      const w = box.x1 - box.x0 + 1, h = box.y1 - box.y0 + 1;
      expect(Math.abs(w - h)).toBeLessThanOrEqual(3);
      expect(Math.max(w, h)).toBeGreaterThan(0.97 * Math.min(off.width, off.height));
      expect(Math.max(w, h)).toBeLessThanOrEqual(Math.min(off.width, off.height));
      expect(Math.abs((box.x0 + box.x1) / 2 - (off.width - 1) / 2)).toBeLessThanOrEqual(3);
      expect(Math.abs((box.y0 + box.y1) / 2 - (off.height - 1) / 2)).toBeLessThanOrEqual(3);

      // Not blank, and the grey levels match dcmtk's rendering with a min–max VOI window (test1 has no Window Center/Width).
      const ref = join(tmp.dir, "test1-dcmtk.png");
      execFileSync("dcmj2pnm", ["--write-png", "+Wm", TEST1, ref]);
      const refPx = await sharp(ref).resize(w, h, { kernel: "lanczos3" }).greyscale().raw().toBuffer();
      let sum = 0, sum2 = 0, err = 0;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = lum(off, (box.y0 + y) * off.width + box.x0 + x);
          sum += v;
          sum2 += v * v;
          err += Math.abs(v - refPx[y * w + x]!);
        }
      }
      const n = w * h;
      expect(Math.sqrt(sum2 / n - (sum / n) ** 2)).toBeGreaterThan(30);
      expect(err / n).toBeLessThan(8);
    });

    it("overlays the selected finding's heatmap where it is hot and nowhere else", async () => {
      await page.getByRole("slider", { name: "Opacity" }).fill("50");
      await page.getByRole("checkbox", { name: "Overlay" }).check();
      await page.waitForFunction(() => document.body.dataset.overlayVisible === "true" && document.body.dataset.overlayLabel === "Cardiomegaly");
      const on = await shoot(page, `${mode}-test1-cardiomegaly-50`);
      const peak = screen(PEAKS.Cardiomegaly!);
      expect(meanDiffInDisc(on, off, peak.x, peak.y, 0.03 * boxW())).toBeGreaterThan(40);
      // Cold: far from the peak the heat is below the threshold, so the layer is transparent.
      for (const cold of [{ px: 0.15, py: 0.15, sigma: 0 }, { px: 0.15, py: 0.85, sigma: 0 }, PEAKS.Effusion!]) {
        const c = screen(cold);
        expect(meanDiffInDisc(on, off, c.x, c.y, 0.03 * boxW())).toBeLessThan(1);
      }
      // The hottest screen region is where the heatmap peaks.
      const hot = hottestPoint(on, off);
      expect(Math.hypot(hot.x - peak.x, hot.y - peak.y)).toBeLessThan(0.02 * boxW());
    });

    it("the Opacity slider changes the blend monotonically", async () => {
      const peak = screen(PEAKS.Cardiomegaly!);
      const diffs: number[] = [];
      for (const v of [0, 20, 40, 60, 80, 100]) {
        await page.getByRole("slider", { name: "Opacity" }).fill(String(v));
        await page.waitForFunction((o) => document.body.dataset.overlayOpacity === String(o), v / 100);
        diffs.push(meanDiffInDisc(await shoot(page, `${mode}-test1-opacity-${v}`), off, peak.x, peak.y, 0.03 * boxW()));
      }
      expect(diffs[0]).toBeLessThan(0.5);
      for (let i = 1; i < diffs.length; i++) expect(diffs[i]!).toBeGreaterThan(diffs[i - 1]! + 5);
    });

    it("selecting a finding in the panel switches the overlay", async () => {
      await page.getByRole("slider", { name: "Opacity" }).fill("50");
      const before = await shoot(page, `${mode}-test1-before-switch`);
      await page.getByRole("button", { name: "Effusion", exact: true }).click();
      await page.waitForFunction(() => document.body.dataset.overlayLabel === "Effusion");
      expect(await page.getByRole("button", { name: "Effusion", exact: true }).getAttribute("aria-pressed")).toBe("true");
      const after = await shoot(page, `${mode}-test1-effusion-50`);
      const e = screen(PEAKS.Effusion!), c = screen(PEAKS.Cardiomegaly!);
      const hot = hottestPoint(after, off);
      expect(Math.hypot(hot.x - e.x, hot.y - e.y)).toBeLessThan(0.02 * boxW());
      expect(meanDiffInDisc(after, off, c.x, c.y, 0.03 * boxW())).toBeLessThan(1);
      expect(meanDiffInDisc(after, before, e.x, e.y, 0.03 * boxW())).toBeGreaterThan(40);
    });

    it("the overlay follows pan and zoom; window/level changes the image, not the overlay; double-click resets", async () => {
      // State from the previous test: Effusion at opacity 0.5.
      const vp = (await page.locator("#viewport").boundingBox())!;
      const cx = vp.x + vp.width / 2, cy = vp.y + vp.height / 2;
      const drag = async (button: "left" | "middle" | "right", dx: number, dy: number) => {
        await page.mouse.move(cx, cy);
        await page.mouse.down({ button });
        await page.mouse.move(cx + dx, cy + dy, { steps: 4 });
        await page.mouse.up({ button });
      };
      const start = await shoot(page, `${mode}-test1-before-gestures`);
      const hot0 = hottestPoint(start, off);

      await drag("middle", 100, -100); // brings the Effusion peak towards the centre, so it stays in view when zoomed
      const panned = await shoot(page, `${mode}-test1-panned`);
      const hot1 = hottestPoint(panned, off);
      expect(Math.hypot(hot1.x - (hot0.x + 100), hot1.y - (hot0.y - 100))).toBeLessThan(3);

      await drag("right", 0, -100); // zoom × e^0.5 about the viewport centre
      const zoomed = await shoot(page, `${mode}-test1-zoomed`);
      const hot2 = hottestPoint(zoomed, off);
      const z = Math.exp(0.5), ccx = (zoomed.width - 1) / 2, ccy = (zoomed.height - 1) / 2;
      expect(Math.hypot(hot2.x - (ccx + (hot1.x - ccx) * z), hot2.y - (ccy + (hot1.y - ccy) * z))).toBeLessThan(5);

      await drag("left", 120, 60); // wider, darker window
      const windowed = await shoot(page, `${mode}-test1-windowed`);
      const hot3 = hottestPoint(windowed, off);
      expect(Math.hypot(hot3.x - hot2.x, hot3.y - hot2.y)).toBeLessThan(2);
      expect(meanDiffInDisc(windowed, zoomed, ccx, ccy, 0.2 * zoomed.width)).toBeGreaterThan(5);

      // Double-click: the initial window and the fitted view again (Cornerstone's WebGL reset fits without the
      // ~1 % margin of the first display, so positions are compared with a few pixels' tolerance).
      await page.mouse.dblclick(cx, cy);
      await page.waitForTimeout(200);
      const reset = await shoot(page, `${mode}-test1-reset`);
      const hot4 = hottestPoint(reset, off);
      expect(Math.hypot(hot4.x - hot0.x, hot4.y - hot0.y)).toBeLessThan(6);
      const meanLum = (r: Raster) => {
        // Central disc, away from the overlay (grey = window) and from the borders the reset fits differently.
        let sum = 0, n = 0;
        for (let y = 0; y < r.height; y++) {
          for (let x = 0; x < r.width; x++) {
            if ((x - ccx) ** 2 + (y - ccy) ** 2 > (0.3 * r.width) ** 2) continue;
            sum += lum(r, y * r.width + x);
            n++;
          }
        }
        return sum / n;
      };
      expect(Math.abs(meanLum(reset) - meanLum(start))).toBeLessThan(3);
      expect(Math.abs(meanLum(windowed) - meanLum(start))).toBeGreaterThan(5);
    });

    it("the panel lists the 14 findings by probability with flags, the model and the disclaimer", async () => {
      const names = await page.locator(".cxr-finding-list button").evaluateAll((bs) => bs.map((b) => b.getAttribute("aria-label")!));
      const study = plugin.studies.get(TEST1_STUDY)!;
      expect(names).toEqual([...study.findings].sort((a, b) => b.probability - a.probability).map((f) => f.label));
      expect(await page.getByText("For prioritization only — not for diagnostic use").isVisible()).toBe(true);
      expect(await page.getByText("Model: cxr-densenet121 0.1.0-test").isVisible()).toBe(true);
      expect(await page.locator(".cxr-finding-list button.positive").count()).toBe(study.findings.filter((f) => f.positive).length);
    });

    it("inverts MONOCHROME1 (RSNA CR, JPEG baseline) against its MONOCHROME2 original", async () => {
      const rasters: Raster[] = [];
      for (const [name, file] of [["m2", RSNA_M2], ["m1", RSNA_M1]] as const) {
        await putRsna(orthanc, file);
        const p = await browser.newPage({ viewport: { width: 1000, height: 720 } });
        await openViewer(p, `${plugin.url}/viewer/?studyInstanceUid=${RSNA_STUDY}&token=${plugin.token}`);
        expect(await p.evaluate(() => [document.body.dataset.photometric, document.body.dataset.sourceFrom])).toEqual([name === "m1" ? "MONOCHROME1" : "MONOCHROME2", "first-image"]);
        await p.getByRole("checkbox", { name: "Overlay" }).uncheck();
        await p.waitForFunction(() => document.body.dataset.overlayVisible === "false");
        rasters.push(await shoot(p, `${mode}-rsna-${name}`));
        await p.close();
      }
      const [m2, m1] = rasters as [Raster, Raster];
      // Inside the image, MONOCHROME1 must display as the negative of MONOCHROME2: strongly anti-correlated grey levels.
      const b = brightBox(m2);
      let sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0, n = 0;
      for (let y = b.y0 + 2; y < b.y1 - 2; y += 2) {
        for (let x = b.x0 + 2; x < b.x1 - 2; x += 2) {
          const i = y * m2.width + x;
          const u = lum(m2, i), v = lum(m1, i);
          sa += u; sb += v; sab += u * v; saa += u * u; sbb += v * v; n++;
        }
      }
      const corr = (sab / n - (sa / n) * (sb / n)) / Math.sqrt((saa / n - (sa / n) ** 2) * (sbb / n - (sb / n) ** 2));
      expect(corr).toBeLessThan(-0.95);
    });
  });

  it("falls back to the SR in the PACS when the plugin's API is unreachable (CPU path)", async () => {
    const browser = await launchChromium("cpu");
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
      const closed = `http://127.0.0.1:${await freePort()}`; // nothing listens there
      // Under the plugin's CSP the page may not even try another origin: the same outcome as nothing listening.
      await openViewer(page, `${plugin.url}/viewer/?studyInstanceUid=${TEST1_STUDY}&token=${plugin.token}&api=${encodeURIComponent(closed)}`, { blockedOrigin: closed });
      await page.screenshot({ path: join(ARTIFACTS, "cpu-test1-sr-fallback-page.png") });
      // The radiograph the SR references (not the decoy radiograph, not an OT capture).
      expect(await page.evaluate(() => [document.body.dataset.sopInstanceUid, document.body.dataset.sourceFrom])).toEqual([TEST1_SOP, "sr"]);
      const shown = await page.locator(".cxr-finding-list button").evaluateAll((bs) => bs.map((b) => [b.getAttribute("aria-label"), b.querySelector(".prob")!.textContent]));
      const expected = [...SR_RESULT.findings].sort((a, b) => b.probability - a.probability);
      expect(shown.map(([l]) => l)).toEqual(expected.map((f) => f.label));
      expect(shown[0]![1]).toBe("77.0%");
      expect(await page.locator(".cxr-finding-list button.positive").count()).toBe(expected.filter((f) => f.positive).length);
      expect(await page.getByText(/^Plugin not reachable/).isVisible()).toBe(true);
      expect(await page.getByText(/^Findings read from the Structured Report/).isVisible()).toBe(true);
      expect(await page.getByText(`Model: ${SR_RESULT.card.name} ${SR_RESULT.card.version}`).isVisible()).toBe(true);
      expect(await page.evaluate(() => document.body.dataset.overlayLabel)).toBe("");
    } finally {
      await browser.close();
    }
  });
});
