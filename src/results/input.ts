import { deriveUid } from "../dicom/uid.ts";
import type { PresentationImage } from "../image/presentation.ts";
import type { InferenceResult } from "../inference/classifier.ts";
import type { MapSelection } from "./pm/selection.ts";
import type { SourceReference } from "./source.ts";

/** The UIDs of the result objects made for one source image. */
export interface ResultUids {
  seriesInstanceUidSr: string;
  seriesInstanceUidSc: string;
  sopInstanceUidSr: string;
  /** n counts from 1, in the order buildHeatmapCaptures returns the captures. */
  sopInstanceUidsSc: (n: number) => string;
  seriesInstanceUidPm: string;
  /** The Parametric Map of one finding, by its card label. */
  sopInstanceUidPm: (label: string) => string;
}

export interface ResultInput {
  /** Naturalized dataset of the source image (without PixelData is fine). */
  source: Record<string, unknown>;
  /** The source's presentation image (for SC blending and SCOORD geometry). */
  image: PresentationImage;
  result: InferenceResult;
  uids: ResultUids;
  /** Content Date/Time of the objects; defaults to the current time. */
  now?: Date;
  /** The SR this one replaces (the same study's earlier result): named in its Predecessor Documents Sequence. */
  predecessor?: SourceReference;
  /** Which findings get a Parametric Map (and are referenced from the SR); default DEFAULT_MAP_SELECTION. */
  mapSelection?: MapSelection;
}

/**
 * Deterministic result UIDs (idempotency): the same source instance(s) processed by the same model
 * (Device UID, which changes with the weights) always give the same SR/SC UIDs, so re-processing
 * replaces rather than duplicates at the PACS. A different model gives new UIDs: its results are new
 * content, never overwrite the old ones.
 */
export function deriveResultUids(sourceSopInstanceUids: string[], deviceUid: string): ResultUids {
  if (sourceSopInstanceUids.length === 0) throw new Error("deriveResultUids needs at least one source SOP Instance UID");
  const sources = [...sourceSopInstanceUids].sort();
  const uid = (...kind: string[]) => deriveUid("cxr-triage-results", deviceUid, ...kind, ...sources);
  return {
    seriesInstanceUidSr: uid("series", "SR"),
    seriesInstanceUidSc: uid("series", "SC"),
    sopInstanceUidSr: uid("instance", "SR"),
    sopInstanceUidsSc: (n: number) => uid("instance", "SC", String(n)),
    seriesInstanceUidPm: uid("series", "PM"),
    sopInstanceUidPm: (label: string) => uid("instance", "PM", label),
  };
}

/** Dates as DICOM DA/TM in local time, and the offset for Timezone Offset From UTC. */
export function dicomDateTime(now: Date): { date: string; time: string; offset: string } {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const date = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}`;
  const time = `${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}.${p(now.getMilliseconds(), 3)}`;
  const off = -now.getTimezoneOffset();
  const offset = `${off >= 0 ? "+" : "-"}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`;
  return { date, time, offset };
}
