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
