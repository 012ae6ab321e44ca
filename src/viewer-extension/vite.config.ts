/**
 * Bundles the viewer page (page/index.html → dist/) with Cornerstone3D and the DICOM image loader.
 * `base: "./"` makes every asset URL relative, so the same build works wherever the plugin mounts it
 * (`/viewer/`), including the decode web worker and the wasm codecs it fetches.
 */
import { join } from "node:path";
import { createLogger, defineConfig, type Plugin } from "vite";
import { BUILD_HASH_FILE, VIEWER_SOURCE_DIR, viewerSourceHash } from "./source-hash.ts";

/** Writes the source hash into the output so `ensureViewerBuilt()` can tell a current build from a stale one. */
function buildHash(): Plugin {
  return {
    name: "cxr-viewer-build-hash",
    apply: "build",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: BUILD_HASH_FILE, source: viewerSourceHash() });
    },
  };
}

/**
 * The codecs' emscripten glue has a Node branch that requires fs/path; it never runs in the browser,
 * so vite's "externalized for browser compatibility" warnings about it are dropped (others are kept).
 */
const logger = createLogger("warn");
const warn = logger.warn.bind(logger);
logger.warn = (msg, options) => {
  if (/Module "(fs|path|url)" has been externalized for browser compatibility/.test(msg)) return;
  warn(msg, options);
};

export default defineConfig({
  customLogger: logger,
  root: join(VIEWER_SOURCE_DIR, "page"),
  base: "./",
  logLevel: "warn",
  build: {
    outDir: process.env.CXR_VIEWER_OUT_DIR ?? join(VIEWER_SOURCE_DIR, "dist"),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // Cornerstone + vtk.js is one large chunk by nature; the page loads it once.
    chunkSizeWarningLimit: 6000,
  },
  worker: { format: "es" },
  resolve: {
    // Cornerstone3D 5.x imports Node's `events`; the npm `events` package is its browser build.
    alias: { "node:events": "events" },
  },
  optimizeDeps: {
    // The codecs are CommonJS/UMD emscripten modules: pre-bundle them for the dev server.
    include: [
      "events",
      "dicom-parser",
      "@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs",
      "@cornerstonejs/codec-charls/decodewasmjs",
      "@cornerstonejs/codec-openjpeg/decodewasmjs",
      "@cornerstonejs/codec-openjph/wasmjs",
      "@cornerstonejs/codec-libjxl/decodewasmjs",
    ],
    exclude: ["@cornerstonejs/dicom-image-loader"],
  },
  plugins: [buildHash()],
});
