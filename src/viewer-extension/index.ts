/**
 * Node side of the viewer extension, for the plugin's web server:
 * - `VIEWER_DIST_DIR`: the built page (serve it statically at `/viewer/`);
 * - `ensureViewerBuilt()`: builds it with vite when missing or built from other sources;
 * - `createDicomwebProxy()`: a same-origin GET proxy to the PACS DICOMweb root, because the
 *   browser may not call the PACS directly (no CORS on Orthanc and most PACS). The page uses
 *   `./dicom-web` (i.e. `/viewer/dicom-web`) unless the study JSON or the address names another root.
 *
 * The browser module itself is `./lib/index.ts`.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pipeline, Readable } from "node:stream";
import type { IncomingMessage, ServerResponse } from "node:http";
import { BUILD_HASH_FILE, VIEWER_SOURCE_DIR, viewerSourceHash } from "./source-hash.ts";

export const VIEWER_DIST_DIR = join(VIEWER_SOURCE_DIR, "dist");
const VITE_CONFIG = join(VIEWER_SOURCE_DIR, "vite.config.ts");
const LOCK_DIR = join(VIEWER_SOURCE_DIR, "dist.lock");

/** True when `VIEWER_DIST_DIR` holds a build of the current sources. */
export function isViewerBuildCurrent(): boolean {
  const stamp = join(VIEWER_DIST_DIR, BUILD_HASH_FILE);
  return existsSync(join(VIEWER_DIST_DIR, "index.html")) && existsSync(stamp) && readFileSync(stamp, "utf8").trim() === viewerSourceHash();
}

function runViteBuild(outDir: string): Promise<void> {
  const vite = join(createRequire(import.meta.url).resolve("vite/package.json"), "../bin/vite.js");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [vite, "build", "--config", VITE_CONFIG], {
      env: { ...process.env, CXR_VIEWER_OUT_DIR: outDir },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`viewer build (vite build --config ${VITE_CONFIG}) failed with exit ${code}: ${stderr.trim().split("\n").slice(-5).join(" | ")}`)),
    );
  });
}

/**
 * Builds the viewer page unless a build of the current sources exists. Safe to call from several
 * processes at once: one builds (into a temporary folder, then renamed), the others wait for it.
 * Needs vite (a devDependency); on a production install build once with `npm run build:viewer`.
 */
export async function ensureViewerBuilt(opts: { log?: (msg: string) => void } = {}): Promise<string> {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    if (isViewerBuildCurrent()) return VIEWER_DIST_DIR;
    try {
      mkdirSync(LOCK_DIR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new Error(`viewer build: cannot create the lock ${LOCK_DIR}: ${(err as Error).message}`);
      // Another process builds; a lock older than 10 minutes belongs to a crashed build. The lock may
      // already be gone again (that build finished): then the next round sees the build.
      const lock = statSync(LOCK_DIR, { throwIfNoEntry: false });
      if (lock && Date.now() - lock.mtimeMs > 10 * 60_000) rmSync(LOCK_DIR, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`viewer build: waited 10 min for ${LOCK_DIR} to be released`);
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      if (isViewerBuildCurrent()) return VIEWER_DIST_DIR;
      const started = Date.now();
      const tmp = `${VIEWER_DIST_DIR}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      await runViteBuild(tmp);
      rmSync(VIEWER_DIST_DIR, { recursive: true, force: true });
      renameSync(tmp, VIEWER_DIST_DIR);
      opts.log?.(`viewer built into ${VIEWER_DIST_DIR} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return VIEWER_DIST_DIR;
    } finally {
      rmSync(LOCK_DIR, { recursive: true, force: true });
    }
  }
}

/**
 * Request handler (express or plain node:http) that forwards GET requests below its mount point to
 * the PACS DICOMweb root, passing Accept and streaming the answer back. Mount it where the page
 * expects it, e.g. `app.use("/viewer/dicom-web", createDicomwebProxy(cfg.pacs.dicomwebUrl))`.
 * `onError` hears of every request the PACS did not serve (unreachable, or the body broke off midway).
 */
export function createDicomwebProxy(pacsDicomwebUrl: string, opts: { headers?: Record<string, string>; onError?: (message: string) => void } = {}) {
  const root = pacsDicomwebUrl.replace(/\/+$/, "");
  return async (req: IncomingMessage & { url?: string }, res: ServerResponse): Promise<void> => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end("DICOMweb proxy is read-only");
      return;
    }
    const path = req.url ?? "/";
    // Only below the DICOMweb root: URL parsing resolves "..", also percent-encoded, so check the result.
    const target = new URL(`${root}${path.startsWith("/") ? path : `/${path}`}`);
    if (!target.href.startsWith(`${root}/`)) {
      res.writeHead(400, { "content-type": "text/plain" }).end(`not below the DICOMweb root: ${path}`);
      return;
    }
    try {
      const upstream = await fetch(target, {
        method: req.method,
        headers: { ...(req.headers.accept ? { Accept: String(req.headers.accept) } : {}), ...opts.headers },
      });
      const headers: Record<string, string> = {};
      // Not content-length/-encoding: fetch() has already decoded a compressed upstream body.
      for (const h of ["content-type", "etag", "last-modified"]) {
        const v = upstream.headers.get(h);
        if (v) headers[h] = v;
      }
      res.writeHead(upstream.status, headers);
      if (!upstream.body || req.method === "HEAD") {
        res.end();
        return;
      }
      // pipeline, not pipe: an upstream that breaks off must end the response (and not go unhandled),
      // and a browser that goes away must cancel the upstream body.
      pipeline(Readable.fromWeb(upstream.body as import("node:stream/web").ReadableStream), res, (err) => {
        if (err && err.code !== "ERR_STREAM_PREMATURE_CLOSE") opts.onError?.(`PACS DICOMweb ${target.href}: body broke off: ${err.message}`);
      });
    } catch (e) {
      const message = `PACS DICOMweb ${root} not reachable: ${(e as Error).message}`;
      opts.onError?.(message);
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(message);
    }
  };
}
