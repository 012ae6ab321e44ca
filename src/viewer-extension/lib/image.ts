/**
 * Cornerstone3D set-up and loading of the study's radiograph over DICOMweb (WADO-RS) with the
 * dicom-image-loader. Windowing comes from the image (Window Center/Width when present, else the
 * loader's min/max), MONOCHROME1 is inverted by Cornerstone from Photometric Interpretation.
 */
import { init as coreInit, RenderingEngine, Enums, setUseCPURendering, getShouldUseCPURendering, type Types } from "@cornerstonejs/core";
import { init as dicomImageLoaderInit, wadors } from "@cornerstonejs/dicom-image-loader";
import { findSourceImage, str, type SourceImage } from "./dicomweb.ts";
import type { RequestAuth } from "./types.ts";

let initialized = false;

export interface CornerstoneSetup extends RequestAuth {
  /** Force Cornerstone's CPU (canvas 2D) rendering path instead of WebGL. */
  cpuRendering?: boolean;
  maxWebWorkers?: number;
}

/** Initialises Cornerstone core and the DICOM image loader once per page. Returns the rendering path in use. */
export function initCornerstone(setup: CornerstoneSetup = {}): "cpu" | "gpu" {
  if (!initialized) {
    coreInit();
    if (setup.cpuRendering) setUseCPURendering(true);
    dicomImageLoaderInit({
      maxWebWorkers: setup.maxWebWorkers ?? Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)),
      beforeSend: (): Record<string, string> => (setup.token ? { Authorization: `Bearer ${setup.token}` } : {}),
    });
    initialized = true;
  }
  return getShouldUseCPURendering() ? "cpu" : "gpu";
}

/**
 * The reading gestures of a radiograph viewer: window/level on the left button (right = wider,
 * down = brighter… as in most PACS viewers), pan on the middle button, zoom on the right button,
 * double-click to reset. Written on the core viewport API rather than @cornerstonejs/tools, which
 * would double the bundle (and its build time) for three gestures. The overlay follows pan and zoom.
 */
export function enableReadingTools(viewport: Types.IStackViewport): () => void {
  const el = viewport.element;
  let drag: { button: number; x: number; y: number; lastX: number; lastY: number; voi: Types.VOIRange; zoom: number } | undefined;
  const down = (e: PointerEvent) => {
    const voi = viewport.getProperties().voiRange;
    if (!voi) return;
    drag = { button: e.button, x: e.clientX, y: e.clientY, lastX: e.clientX, lastY: e.clientY, voi: { ...voi }, zoom: viewport.getZoom() };
    el.setPointerCapture(e.pointerId);
    e.preventDefault();
  };
  const move = (e: PointerEvent) => {
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (drag.button === 0) {
      // One viewport width of travel changes the window by its own width.
      const width0 = drag.voi.upper - drag.voi.lower;
      const k = width0 / Math.max(1, el.clientWidth);
      const width = Math.max(1, width0 + dx * k);
      const center = (drag.voi.upper + drag.voi.lower) / 2 - dy * k;
      viewport.setProperties({ voiRange: { lower: center - width / 2, upper: center + width / 2 } });
    } else if (drag.button === 1) {
      // Move the camera by the world distance the pointer travelled: the same on the WebGL and the CPU
      // path (their setPan/getPan use different units).
      const a = viewport.canvasToWorld([drag.lastX, drag.lastY]);
      const b = viewport.canvasToWorld([e.clientX, e.clientY]);
      const { focalPoint, position } = viewport.getCamera();
      const shift = (p: Types.Point3): Types.Point3 => [p[0] - (b[0] - a[0]), p[1] - (b[1] - a[1]), p[2] - (b[2] - a[2])];
      viewport.setCamera({ focalPoint: shift(focalPoint!), position: shift(position!) });
    } else if (drag.button === 2) {
      viewport.setZoom(drag.zoom * Math.exp(-dy / 200));
    }
    drag.lastX = e.clientX;
    drag.lastY = e.clientY;
    viewport.render();
  };
  const up = () => (drag = undefined);
  const reset = () => {
    viewport.resetProperties();
    viewport.resetCamera();
    viewport.render();
  };
  const noMenu = (e: Event) => e.preventDefault();
  // One list drives both attaching and detaching, so the two cannot drift apart.
  const handlers: [string, (e: never) => void][] = [
    ["pointerdown", down],
    ["pointermove", move],
    ["pointerup", up],
    ["pointercancel", up],
    ["dblclick", reset],
    ["contextmenu", noMenu],
  ];
  for (const [type, h] of handlers) el.addEventListener(type, h as EventListener);
  return () => {
    for (const [type, h] of handlers) el.removeEventListener(type, h as EventListener);
  };
}

/** Creates a stack viewport on `element` (a sized, empty div). */
export function createStackViewport(element: HTMLDivElement, id = "cxr-triage"): Types.IStackViewport {
  const engine = new RenderingEngine(`${id}-engine`);
  engine.enableElement({ viewportId: id, type: Enums.ViewportType.STACK, element, defaultOptions: { background: [0, 0, 0] } });
  return engine.getViewport(id) as Types.IStackViewport;
}

export interface LoadedImage extends SourceImage {
  rows: number;
  columns: number;
  photometricInterpretation: string;
  /** Who and what is on screen, for the reader to check against the worklist. */
  patientName: string;
  patientId: string;
  studyDate: string;
}

/** Finds the study's radiograph in the PACS and shows it in `viewport`; resolves after the first render. */
export async function loadStudyImage(
  viewport: Types.IStackViewport,
  opts: RequestAuth & { dicomwebUrl: string; studyInstanceUid: string; sopInstanceUid?: string },
): Promise<LoadedImage> {
  const source = await findSourceImage(opts.dicomwebUrl, opts.studyInstanceUid, opts, opts.sopInstanceUid);
  wadors.metaDataManager.add(source.imageId, source.metadata as never);
  const rendered = new Promise<void>((resolve) => {
    viewport.element.addEventListener(Enums.Events.IMAGE_RENDERED, () => resolve(), { once: true });
  });
  await viewport.setStack([source.imageId]);
  viewport.render();
  await rendered;
  const image = viewport.getCornerstoneImage();
  return {
    ...source,
    rows: image.rows,
    columns: image.columns,
    photometricInterpretation: str(source.metadata, "00280004") ?? "unknown",
    patientName: String((source.metadata["00100010"]?.Value?.[0] as { Alphabetic?: string } | undefined)?.Alphabetic ?? "").replace(/\^/g, " ").trim(),
    patientId: str(source.metadata, "00100020") ?? "",
    studyDate: str(source.metadata, "00080020") ?? "",
  };
}
