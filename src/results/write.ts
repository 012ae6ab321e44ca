import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { readDicom } from "../dicom/read.ts";
import { writePart10 } from "../dicom/write.ts";
import type { PresentationImage } from "../image/presentation.ts";
import type { InferenceResult } from "../inference/classifier.ts";
import { deriveResultUids, type ResultUids } from "./input.ts";
import { buildParametricMaps } from "./pm/map.ts";
import type { MapSelection } from "./pm/selection.ts";
import { buildHeatmapCaptures } from "./sc/capture.ts";
import { copyPatientAndStudy, ResultInputError, sourceReference, type SourceReference } from "./source.ts";
import { buildStructuredReport } from "./sr/document.ts";

export interface WriteResultObjectsOptions {
  /** The source DICOM file; or give its naturalized `dataset` instead. */
  sourcePath?: string;
  dataset?: Record<string, unknown>;
  image: PresentationImage;
  result: InferenceResult;
  outDir: string;
  basename: string;
  /** Default: deriveResultUids(source SOP Instance UID, model Device UID), so re-runs give the same UIDs. */
  uids?: ResultUids;
  /** The SR the new one replaces (Predecessor Documents Sequence). */
  predecessor?: SourceReference;
  now?: Date;
  /** Which findings get a Parametric Map; default DEFAULT_MAP_SELECTION (positives, else the top finding). */
  mapSelection?: MapSelection;
}

export interface WrittenResultObjects {
  sr: { path: string; sopInstanceUid: string };
  sc: { path: string; sopInstanceUid: string }[];
  /** One Parametric Map per selected finding, in card order. */
  pm: { path: string; sopInstanceUid: string; label: string }[];
  /** What was repaired or left out of the source's patient/study attributes (see src/results/source.ts). */
  notes: string[];
}

/**
 * Writes `<outDir>/<basename>.sr.dcm`, `<outDir>/<basename>.sc-<n>.dcm` (n from 1) and
 * `<outDir>/<basename>.pm-<label>.dcm` for one source image.
 */
export function writeResultObjects(opts: WriteResultObjectsOptions): WrittenResultObjects {
  const source = opts.dataset ?? (opts.sourcePath ? readDicom(opts.sourcePath, { withPixelData: false }).dataset : undefined);
  const what = opts.sourcePath ?? opts.image.source.path;
  if (!source) throw new ResultInputError(what, "writeResultObjects needs the source's sourcePath or dataset");
  // the same Type 1 identity check the builders make, before its SOP Instance UID is used for the result UIDs
  const { sopInstanceUid } = sourceReference(source, what);
  const uids = opts.uids ?? deriveResultUids([sopInstanceUid], opts.result.card.deviceUid);
  const input = { source, image: opts.image, result: opts.result, uids, now: opts.now ?? new Date(), mapSelection: opts.mapSelection, ...(opts.predecessor && { predecessor: opts.predecessor }) };

  const sr = buildStructuredReport(input);
  const captures = buildHeatmapCaptures(input);
  const maps = buildParametricMaps(input, opts.mapSelection);
  mkdirSync(opts.outDir, { recursive: true });
  const srPath = join(opts.outDir, `${opts.basename}.sr.dcm`);
  writePart10(sr, srPath);
  const sc = captures.map((ds, k) => {
    const path = join(opts.outDir, `${opts.basename}.sc-${k + 1}.dcm`);
    writePart10(ds, path);
    return { path, sopInstanceUid: String(ds.SOPInstanceUID) };
  });
  const pm = maps.map(({ finding: { label }, dataset: ds }) => {
    const path = join(opts.outDir, `${opts.basename}.pm-${label.replace(/[^A-Za-z0-9_-]/g, "_")}.dcm`);
    writePart10(ds, path);
    return { path, sopInstanceUid: String(ds.SOPInstanceUID), label };
  });
  return { sr: { path: srPath, sopInstanceUid: uids.sopInstanceUidSr }, sc, pm, notes: copyPatientAndStudy(source, what).notes };
}

/**
 * The `cxr infer --dicom` output writer: SR + SC + Parametric Maps for a DICOM input, nothing for PNG/JPEG inputs
 * (they have no patient, study or SOP instance to reference).
 */
export async function writeDicomResults(r: { input: string; baseName: string; outDir: string; image: PresentationImage; result: InferenceResult; options?: { parametricMaps?: MapSelection } }): Promise<string[]> {
  if (r.image.source.kind !== "dicom") return [];
  const written = writeResultObjects({ sourcePath: r.input, image: r.image, result: r.result, outDir: r.outDir, basename: r.baseName, mapSelection: r.options?.parametricMaps });
  for (const note of written.notes) process.stderr.write(`note: ${note}\n`);
  return [written.sr.path, ...written.sc.map((s) => s.path), ...written.pm.map((m) => m.path)];
}
