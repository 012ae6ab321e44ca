/**
 * Test harness of the viewer page: a real Orthanc holding the study, a stand-in of the plugin's API
 * (study JSON + heatmap PNGs + the built page + the DICOMweb proxy, exactly the routes the plugin
 * serves), and Debian's Chromium driven by playwright-core in the two rendering paths.
 */
import { createServer, type Server } from "node:http";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import express from "express";
import { PNG } from "pngjs";
import type { Browser, Page } from "playwright-core";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { heatColor } from "../../src/viewer-extension/lib/colormap.ts";
import { freePort } from "../../src/peers/ports.ts";
import { launchDebianChromium } from "../helpers/chromium.ts";
import { createDicomwebProxy, VIEWER_DIST_DIR } from "../../src/viewer-extension/index.ts";
import { securityHeaders } from "../../src/worklist/http-security.ts";

export const ARTIFACTS = join(process.cwd(), "test-artifacts", "viewer");
mkdirSync(ARTIFACTS, { recursive: true });

export type RenderMode = "webgl" | "cpu";

/** WebGL through SwiftShader (software GL via ANGLE); CPU: no WebGL at all, so Cornerstone must take its canvas-2D path. */
export const MODE_FLAGS: Record<RenderMode, string[]> = {
  webgl: ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
  cpu: ["--disable-gpu", "--disable-3d-apis", "--disable-webgl"],
};

export function launchChromium(mode: RenderMode): Promise<Browser> {
  return launchDebianChromium(MODE_FLAGS[mode]);
}

/** A synthetic GradCAM map with one Gaussian peak at (px, py) (fractions of width/height); 0 far from it. */
export interface KnownPeak {
  px: number;
  py: number;
  sigma: number; // fraction of the width
}

export function heatmapPng(width: number, height: number, peak: KnownPeak): Buffer {
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, bitDepth: 8 });
  const s = peak.sigma * width;
  const data = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const d2 = (x - peak.px * width) ** 2 + (y - peak.py * height) ** 2;
      data[y * width + x] = Math.round(255 * Math.exp(-d2 / (2 * s * s)));
    }
  }
  png.data = data;
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, bitDepth: 8 });
}

export interface FakeStudy {
  studyInstanceUid: string;
  /** The plugin's SR in the PACS (the API's `outputs.sr`), if any. */
  srSopInstanceUid?: string;
  findings: { label: string; probability: number; threshold: number; positive: boolean }[];
  heatmaps: Map<string, Buffer>;
}

/** 14 findings with distinct probabilities, operating points at 0.5, heatmaps for the given labels. */
export function fakeStudy(studyInstanceUid: string, size: { width: number; height: number }, peaks: Record<string, KnownPeak>): FakeStudy {
  const findings = NIH_LABELS.map((label, i) => {
    const probability = label in peaks ? 0.9 - Object.keys(peaks).indexOf(label) * 0.1 : 0.05 + i * 0.02;
    return { label, probability, threshold: 0.5, positive: probability >= 0.5 };
  });
  const heatmaps = new Map(Object.entries(peaks).map(([label, p]) => [label, heatmapPng(size.width, size.height, p)]));
  return { studyInstanceUid, findings, heatmaps };
}

export interface PluginStandIn {
  url: string;
  token: string;
  studies: Map<string, FakeStudy>;
  close(): Promise<void>;
}

/**
 * The plugin's routes as the worklist API serves them (`/api/studies/<uid>`, `/api/studies/<uid>/heatmaps/<label>.png`,
 * bearer token as header or `token` parameter), the built page at `/viewer/` and the DICOMweb proxy at `/viewer/dicom-web`,
 * with the plugin's own security headers (its Content-Security-Policy is the one the viewer must work under).
 */
export async function startPluginStandIn(pacsDicomwebUrl: string): Promise<PluginStandIn> {
  const token = "viewer-test-token";
  const studies = new Map<string, FakeStudy>();
  const app = express();
  app.use(securityHeaders);
  const auth: express.RequestHandler = (req, res, next) => {
    const t = req.headers.authorization?.replace(/^Bearer /, "") ?? (req.query.token as string | undefined);
    if (t !== token) {
      res.status(401).json({ error: "missing or invalid bearer token" });
      return;
    }
    next();
  };
  app.get("/api/studies/:uid", auth, (req, res) => {
    const s = studies.get(String(req.params.uid));
    if (!s) return void res.status(404).json({ error: `unknown study ${req.params.uid}` });
    res.json({
      studyInstanceUid: s.studyInstanceUid,
      state: "exported",
      findings: s.findings,
      model: { name: "cxr-densenet121", version: "0.1.0-test", deviceUid: "2.25.1", training: "untrained — random weights" },
      ...(s.srSopInstanceUid ? { outputs: { sr: s.srSopInstanceUid, sc: [] } } : {}),
      heatmaps: [...s.heatmaps.keys()].map((label) => ({ label, url: `/api/studies/${encodeURIComponent(s.studyInstanceUid)}/heatmaps/${encodeURIComponent(label)}.png` })),
    });
  });
  app.get("/api/studies/:uid/heatmaps/:file", auth, (req, res) => {
    const png = studies.get(String(req.params.uid))?.heatmaps.get(String(req.params.file).replace(/\.png$/, ""));
    if (!png) return void res.status(404).end();
    res.type("png").send(png);
  });
  app.use("/viewer/dicom-web", auth, createDicomwebProxy(pacsDicomwebUrl));
  app.use("/viewer", express.static(VIEWER_DIST_DIR));
  const server: Server = createServer(app);
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    studies,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/**
 * Opens the viewer and waits for `data-ready` (or fails with the page's own error message). Any
 * Content-Security-Policy violation fails it too, except requests to `blockedOrigin` (a test that
 * points the page at another origin, which the policy is meant to stop).
 */
export async function openViewer(page: Page, url: string, opts: { blockedOrigin?: string } = {}): Promise<void> {
  const errors: string[] = [];
  const violations: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text()) && !(opts.blockedOrigin && m.text().includes(opts.blockedOrigin))) violations.push(m.text());
  });
  await page.goto(url);
  const state = await page
    .waitForFunction(() => (document.body.dataset.error ? `error: ${document.body.dataset.error}` : document.body.dataset.ready === "true" && "ready"), undefined, { timeout: 90_000 })
    .then((h) => h.jsonValue());
  if (state !== "ready") throw new Error(`viewer failed: ${String(state)}; page errors: ${errors.join(" | ")}; CSP violations: ${violations.join(" | ")}`);
  if (violations.length) throw new Error(`viewer broke its Content-Security-Policy: ${violations.join(" | ")}`);
}

export interface Raster {
  width: number;
  height: number;
  data: Buffer; // RGBA
}

export async function shoot(page: Page, name: string): Promise<Raster> {
  const buf = await page.locator("#viewport").screenshot();
  writeFileSync(join(ARTIFACTS, `${name}.png`), buf);
  const png = PNG.sync.read(buf);
  return { width: png.width, height: png.height, data: png.data };
}

export const lum = (r: Raster, i: number) => 0.299 * r.data[i * 4]! + 0.587 * r.data[i * 4 + 1]! + 0.114 * r.data[i * 4 + 2]!;

/** Bounding box of pixels brighter than `level` (the displayed image inside the black viewport). */
export function brightBox(r: Raster, level = 8): { x0: number; y0: number; x1: number; y1: number } {
  let x0 = r.width, y0 = r.height, x1 = -1, y1 = -1;
  for (let y = 0; y < r.height; y++) {
    for (let x = 0; x < r.width; x++) {
      if (lum(r, y * r.width + x) > level) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return { x0, y0, x1, y1 };
}

/** Mean absolute RGB difference of two screenshots inside a disc (cx, cy, radius), in screen pixels. */
export function meanDiffInDisc(a: Raster, b: Raster, cx: number, cy: number, radius: number): number {
  let sum = 0, n = 0;
  for (let y = Math.max(0, Math.floor(cy - radius)); y <= Math.min(a.height - 1, cy + radius); y++) {
    for (let x = Math.max(0, Math.floor(cx - radius)); x <= Math.min(a.width - 1, cx + radius); x++) {
      if ((x - cx) ** 2 + (y - cy) ** 2 > radius * radius) continue;
      const i = (y * a.width + x) * 4;
      sum += Math.abs(a.data[i]! - b.data[i]!) + Math.abs(a.data[i + 1]! - b.data[i + 1]!) + Math.abs(a.data[i + 2]! - b.data[i + 2]!);
      n++;
    }
  }
  return sum / (3 * n);
}

/** Centroid of the values ≥ 85 % of the maximum of a row-major map. */
export function topCentroid(values: Float32Array, width: number): { x: number; y: number; max: number } {
  let max = 0;
  for (const v of values) if (v > max) max = v;
  let sx = 0, sy = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i]! >= 0.85 * max) {
      sx += i % width;
      sy += Math.floor(i / width);
      n++;
    }
  }
  return { x: sx / n, y: sy / n, max };
}

/**
 * Where the overlay is reddest on screen: "redness" R − max(G, B) of the blended screenshot minus that
 * of the plain one. Over a grey image the blend's redness is opacity × (R − G) of the colour map,
 * which is highest at the top of the heat range.
 */
export function hottestPoint(on: Raster, off: Raster): { x: number; y: number; strength: number } {
  const red = new Float32Array(on.width * on.height);
  for (let i = 0; i < red.length; i++) {
    const r = (s: Raster) => s.data[i * 4]! - Math.max(s.data[i * 4 + 1]!, s.data[i * 4 + 2]!);
    red[i] = r(on) - r(off);
  }
  const c = topCentroid(red, on.width);
  return { x: c.x, y: c.y, strength: c.max };
}

/** The same redness predicted from an 8-bit heatmap PNG through the viewer's colour map (its own pixel grid). */
export function predictedHottest(png: PNG, threshold: number): { fx: number; fy: number } {
  const red = new Float32Array(png.width * png.height);
  for (let i = 0; i < red.length; i++) {
    const h = png.data[i * 4]! / 255;
    const [r, g] = heatColor(h);
    red[i] = h >= threshold ? Math.max(0, r - g) : 0;
  }
  const c = topCentroid(red, png.width);
  return { fx: (c.x + 0.5) / png.width, fy: (c.y + 0.5) / png.height };
}
