/**
 * The few DICOMweb calls the viewer makes (QIDO-RS series search, WADO-RS metadata), on DICOM JSON.
 * Frames themselves are fetched by Cornerstone's dicom-image-loader (wadors).
 */
import type { RequestAuth } from "./types.ts";

export type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

export const TAG = {
  Modality: "00080060",
  SOPClassUID: "00080016",
  SOPInstanceUID: "00080018",
  SeriesInstanceUID: "0020000E",
  StudyInstanceUID: "0020000D",
  InstanceNumber: "00200013",
  ValueType: "0040A040",
  ConceptNameCodeSequence: "0040A043",
  ConceptCodeSequence: "0040A168",
  MeasuredValueSequence: "0040A300",
  NumericValue: "0040A30A",
  MeasurementUnitsCodeSequence: "004008EA",
  TextValue: "0040A160",
  ContentSequence: "0040A730",
  CodeValue: "00080100",
  CodingSchemeDesignator: "00080102",
  CodeMeaning: "00080104",
} as const;

export function str(ds: DicomJson | undefined, tag: string): string | undefined {
  const v = ds?.[tag]?.Value?.[0];
  return v === undefined || v === null ? undefined : String(v);
}

export function seq(ds: DicomJson | undefined, tag: string): DicomJson[] {
  return (ds?.[tag]?.Value as DicomJson[] | undefined) ?? [];
}

/** Makes a DICOMweb root absolute (relative roots are resolved against the page) without a trailing slash. */
export function absoluteRoot(root: string): string {
  const base = typeof location !== "undefined" ? location.href : "http://localhost/";
  return new URL(root, base).href.replace(/\/+$/, "");
}

export async function fetchDicomJson(url: string, auth: RequestAuth): Promise<DicomJson[]> {
  const headers: Record<string, string> = { Accept: "application/dicom+json" };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  const r = await fetch(url, { headers });
  if (r.status === 204) return [];
  if (!r.ok) throw new Error(`DICOMweb ${url}: HTTP ${r.status}`);
  const text = await r.text();
  return text ? (JSON.parse(text) as DicomJson[]) : [];
}

/** Non-image SOP classes that live beside the radiograph: the SR family and presentation states. */
export function isNonImageSopClass(sopClassUid: string | undefined): boolean {
  return !!sopClassUid && (sopClassUid.startsWith("1.2.840.10008.5.1.4.1.1.88.") || sopClassUid.startsWith("1.2.840.10008.5.1.4.1.1.11."));
}

export interface SourceImage {
  seriesInstanceUid: string;
  sopInstanceUid: string;
  /** WADO-RS metadata of the instance (DICOM JSON). */
  metadata: DicomJson;
  /** Cornerstone image id of frame 1 for the dicom-image-loader's wadors scheme. */
  imageId: string;
}

/**
 * Finds the chest radiograph of a study: the first DX/CR (else any non-derived) image instance,
 * or exactly `sopInstanceUid` when given. Throws naming the study when there is none.
 */
export async function findSourceImage(dicomwebRoot: string, studyInstanceUid: string, auth: RequestAuth, sopInstanceUid?: string): Promise<SourceImage> {
  const root = absoluteRoot(dicomwebRoot);
  const series = await fetchDicomJson(`${root}/studies/${studyInstanceUid}/series`, auth);
  if (series.length === 0) throw new Error(`study ${studyInstanceUid}: not found in the PACS (${root})`);
  // DX/CR series first; OT (where the plugin's own Secondary Capture heatmaps go) last; never SR/PR/KO/SEG.
  // The SOP class alone does not tell: NIH radiographs are often wrapped as Secondary Capture with Modality DX.
  const rank = (s: DicomJson) => {
    const m = str(s, TAG.Modality) ?? "";
    return ["DX", "CR"].includes(m) ? 0 : m === "OT" ? 2 : ["SR", "PR", "KO", "SEG"].includes(m) ? 3 : 1;
  };
  const ordered = [...series].sort((a, b) => rank(a) - rank(b)).filter((s) => rank(s) < 3);
  for (const s of ordered) {
    const seriesUid = str(s, TAG.SeriesInstanceUID)!;
    const instances = await fetchDicomJson(`${root}/studies/${studyInstanceUid}/series/${seriesUid}/metadata`, auth);
    instances.sort((a, b) => Number(str(a, TAG.InstanceNumber) ?? 0) - Number(str(b, TAG.InstanceNumber) ?? 0));
    const hit = instances.find((i) => (sopInstanceUid ? str(i, TAG.SOPInstanceUID) === sopInstanceUid : !isNonImageSopClass(str(i, TAG.SOPClassUID)) && i["00280010"] !== undefined));
    if (hit) {
      const sop = str(hit, TAG.SOPInstanceUID)!;
      return {
        seriesInstanceUid: seriesUid,
        sopInstanceUid: sop,
        metadata: hit,
        imageId: `wadors:${root}/studies/${studyInstanceUid}/series/${seriesUid}/instances/${sop}/frames/1`,
      };
    }
  }
  throw new Error(`study ${studyInstanceUid}: no ${sopInstanceUid ? `instance ${sopInstanceUid}` : "radiograph (DX/CR image)"} in the PACS (${root})`);
}
