/**
 * The GradCAM heatmap of one finding drawn over a Cornerstone3D stack viewport, registered to the
 * image: the heatmap covers the source image's pixel grid, and on every render the layer is mapped
 * through the viewport's image→world→canvas transform, so it follows pan, zoom, flip and rotation
 * on both the WebGL and the CPU rendering path.
 *
 * Compositing is one colour layer with constant opacity, transparent where the heat is below the
 * threshold — what a DICOM Blending Softcopy Presentation State could also express.
 */
import { Enums, type Types } from "@cornerstonejs/core";
import { authHeaders, loadTriageStudy, withToken, type StudySourceOptions } from "./api.ts";
import { colorizeHeatmap, DEFAULT_HEAT_THRESHOLD } from "./colormap.ts";
import { fetchParametricMapHeat } from "./pmap.ts";
import type { TriageStudy } from "./types.ts";

export interface TriageOverlayOptions extends StudySourceOptions {
  /** Results already loaded (skips the API call). */
  study?: TriageStudy;
  /** Finding shown first; default: the most probable one that has a heatmap. */
  label?: string;
  /** Layer opacity in [0,1]; default 0.5. */
  opacity?: number;
  visible?: boolean;
  /** Heat in [0,1] below which the layer is transparent. */
  threshold?: number;
}

export interface OverlayState {
  label: string | undefined;
  visible: boolean;
  opacity: number;
  threshold: number;
  /** The label whose heatmap is on screen now (undefined while loading or when there is none). */
  drawnLabel: string | undefined;
  /** Why the selected finding's heatmap is not shown (missing, unreadable, not on the image's grid). */
  problem: string | undefined;
}

export interface TriageOverlay {
  readonly study: TriageStudy;
  readonly element: HTMLCanvasElement;
  state(): OverlayState;
  /** Switches to another finding; resolves once its heatmap is drawn (or known to be absent). */
  setFinding(label: string): Promise<void>;
  setVisible(visible: boolean): void;
  setOpacity(opacity: number): void;
  /** Called after every redraw of the layer. */
  onChange(listener: (s: OverlayState) => void): () => void;
  destroy(): void;
}

interface HeatLayer {
  canvas: HTMLCanvasElement;
  width: number;
  height: number;
}

/** 8-bit heat of an 8-bit grayscale heatmap PNG; colour management off so heat values stay exact. */
async function pngHeat(url: string, token: string | undefined): Promise<{ width: number; height: number; heat: Uint8Array }> {
  const r = await fetch(withToken(url, token), { headers: authHeaders(token) });
  if (!r.ok) throw new Error(`heatmap ${url}: HTTP ${r.status}`);
  const bitmap = await createImageBitmap(await r.blob(), { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const { width, height } = bitmap;
  const ctx = new OffscreenCanvas(width, height).getContext("2d", { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height);
  const heat = new Uint8Array(width * height);
  for (let i = 0; i < heat.length; i++) heat[i] = rgba.data[i * 4]!;
  return { width, height, heat };
}

/** The coloured layer of one heatmap, from the plugin's PNG or from its Parametric Map in the PACS. */
async function loadHeatLayer(h: TriageStudy["heatmaps"][number], token: string | undefined, threshold: number): Promise<HeatLayer> {
  const { width, height, heat } = h.format === "parametric-map" ? await fetchParametricMapHeat(h.url, { token }) : await pngHeat(h.url, token);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d")!.putImageData(new ImageData(colorizeHeatmap(heat, threshold), width, height), 0, 0);
  return { canvas, width, height };
}

export async function attachTriageOverlay(viewport: Types.IStackViewport, opts: TriageOverlayOptions): Promise<TriageOverlay> {
  const study = opts.study ?? (await loadTriageStudy(opts));
  const threshold = opts.threshold ?? DEFAULT_HEAT_THRESHOLD;
  const byProbability = [...study.findings].sort((a, b) => b.probability - a.probability);
  const state: OverlayState = {
    label: opts.label ?? byProbability.find((f) => study.heatmaps.some((h) => h.label === f.label))?.label ?? byProbability[0]?.label,
    visible: opts.visible ?? true,
    opacity: opts.opacity ?? 0.5,
    threshold,
    drawnLabel: undefined,
    problem: undefined,
  };
  const layers = new Map<string, Promise<HeatLayer>>();
  const listeners = new Set<(s: OverlayState) => void>();

  const host = viewport.element;
  if (getComputedStyle(host).position === "static") host.style.position = "relative";
  const canvas = document.createElement("canvas");
  canvas.className = "cxr-triage-heatmap";
  canvas.setAttribute("aria-hidden", "true");
  Object.assign(canvas.style, { position: "absolute", inset: "0", width: "100%", height: "100%", pointerEvents: "none", zIndex: "1" });
  host.appendChild(canvas);
  let current: HeatLayer | undefined;

  const layerFor = (label: string): Promise<HeatLayer> | undefined => {
    const h = study.heatmaps.find((x) => x.label === label);
    if (!h) return undefined;
    let p = layers.get(label);
    if (!p) {
      p = loadHeatLayer(h, opts.token, threshold);
      layers.set(label, p);
      p.catch(() => layers.delete(label));
    }
    return p;
  };

  const draw = () => {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(host.clientWidth * dpr);
    const h = Math.round(host.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d")!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const imageData = viewport.getImageData();
    if (state.visible && current && imageData) {
      const [cols, rows] = imageData.dimensions;
      // Canvas (CSS px) positions of the image's outer corners; index −0.5 is the edge of the first pixel.
      const toCanvas = (i: number, j: number) => viewport.worldToCanvas(imageData.imageData.indexToWorld([i, j, 0]) as Types.Point3);
      const p0 = toCanvas(-0.5, -0.5);
      const px = toCanvas(cols! - 0.5, -0.5);
      const py = toCanvas(-0.5, rows! - 0.5);
      ctx.setTransform(
        ((px[0] - p0[0]) / current.width) * dpr,
        ((px[1] - p0[1]) / current.width) * dpr,
        ((py[0] - p0[0]) / current.height) * dpr,
        ((py[1] - p0[1]) / current.height) * dpr,
        p0[0] * dpr,
        p0[1] * dpr,
      );
      ctx.globalAlpha = state.opacity;
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(current.canvas, 0, 0);
    }
    for (const l of listeners) l({ ...state });
  };

  const onRendered = () => draw();
  host.addEventListener(Enums.Events.IMAGE_RENDERED, onRendered);

  const setFinding = async (label: string) => {
    state.label = label;
    state.drawnLabel = undefined;
    const pending = layerFor(label);
    let layer: HeatLayer | undefined;
    let problem: string | undefined = pending ? undefined : `no heatmap for ${label}`;
    try {
      layer = pending ? await pending : undefined;
    } catch (e) {
      problem = (e as Error).message;
    }
    if (state.label !== label) return; // another finding was chosen meanwhile
    // A heatmap is registered to the source image's pixel grid (possibly scaled down): same aspect ratio.
    const dims = viewport.getImageData()?.dimensions;
    if (layer && dims && Math.abs(layer.width / layer.height - dims[0]! / dims[1]!) > 0.01) {
      problem = `heatmap of ${label} is ${layer.width}×${layer.height}, the image ${dims[0]}×${dims[1]}: not the same pixel grid, not shown`;
      layer = undefined;
    }
    current = layer;
    state.drawnLabel = layer ? label : undefined;
    state.problem = problem;
    draw();
  };

  if (state.label) await setFinding(state.label);
  else draw();

  return {
    study,
    element: canvas,
    state: () => ({ ...state }),
    setFinding,
    setVisible(visible) {
      state.visible = visible;
      draw();
    },
    setOpacity(opacity) {
      state.opacity = Math.min(1, Math.max(0, opacity));
      draw();
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    destroy() {
      host.removeEventListener(Enums.Events.IMAGE_RENDERED, onRendered);
      canvas.remove();
      listeners.clear();
    },
  };
}
