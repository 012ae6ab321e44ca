/**
 * Heatmaps from the plugin's DICOM Parametric Maps in the PACS (src/results/pm): the overlay's source when
 * the plugin's API is down. The SR names each finding's map (TID 1501 "Source of Measurement", DCM 121112)
 * and lists the maps with their series (Pertinent Other Evidence); the map itself is read with WADO-RS
 * (metadata for the Real World Value Mapping, frame 1 for the stored values). Pure functions except
 * fetchParametricMapHeat, so they are unit-tested in Node.
 */
import { realWorldValues, type LinearValueMapping } from "../../results/pm/values.ts";
import { fetchDicomJson, seq, str, TAG, type DicomJson } from "./dicomweb.ts";
import { labelFromCode } from "./sr.ts";
import type { RequestAuth } from "./types.ts";

export const PARAMETRIC_MAP_STORAGE = "1.2.840.10008.5.1.4.1.1.30";

const PM_TAG = {
  SharedFunctionalGroupsSequence: "52009229",
  PerFrameFunctionalGroupsSequence: "52009230",
  RealWorldValueMappingSequence: "00409096",
  RealWorldValueFirstValueMapped: "00409216",
  RealWorldValueLastValueMapped: "00409211",
  RealWorldValueIntercept: "00409224",
  RealWorldValueSlope: "00409225",
  QuantityDefinitionSequence: "00409220",
  PertinentOtherEvidenceSequence: "0040A385",
  ReferencedSeriesSequence: "00081115",
  ReferencedSOPSequence: "00081199",
  ReferencedSOPInstanceUID: "00081155",
  Rows: "00280010",
  Columns: "00280011",
  BitsAllocated: "00280100",
  PixelRepresentation: "00280103",
} as const;

/** A finding's Parametric Map as the SR names it. */
export interface ParametricMapRef { label: string; seriesInstanceUid: string; sopInstanceUid: string }

/**
 * The maps an SR references: per finding (its group's "Source of Measurement" IMAGE of the Parametric Map
 * SOP class), with the series from the SR's Pertinent Other Evidence. A map whose series is not listed is left out.
 */
export function parametricMapsFromSr(sr: DicomJson, labelOf: (group: DicomJson) => string | undefined): ParametricMapRef[] {
  const seriesOf = new Map<string, string>();
  for (const study of seq(sr, PM_TAG.PertinentOtherEvidenceSequence)) {
    for (const s of seq(study, PM_TAG.ReferencedSeriesSequence)) {
      for (const r of seq(s, PM_TAG.ReferencedSOPSequence)) seriesOf.set(str(r, PM_TAG.ReferencedSOPInstanceUID)!, str(s, TAG.SeriesInstanceUID)!);
    }
  }
  const out: ParametricMapRef[] = [];
  const visit = (container: DicomJson) => {
    for (const item of seq(container, TAG.ContentSequence)) {
      const isMapRef = str(item, TAG.ValueType) === "IMAGE" && str(seq(item, TAG.ConceptNameCodeSequence)[0], TAG.CodeValue) === "121112";
      const ref = isMapRef ? seq(item, PM_TAG.ReferencedSOPSequence)[0] : undefined;
      if (ref && str(ref, "00081150") === PARAMETRIC_MAP_STORAGE) {
        const sop = str(ref, PM_TAG.ReferencedSOPInstanceUID)!;
        const label = labelOf(container);
        const series = seriesOf.get(sop);
        if (label && series) out.push({ label, seriesInstanceUid: series, sopInstanceUid: sop });
      }
      if (seq(item, TAG.ContentSequence).length) visit(item);
    }
  };
  visit(sr);
  return out;
}

/** Frame 1's functional group `tag`: per-frame if there, else shared. */
function frameGroup(md: DicomJson, tag: string): DicomJson | undefined {
  return seq(seq(md, PM_TAG.PerFrameFunctionalGroupsSequence)[0], tag)[0] ?? seq(seq(md, PM_TAG.SharedFunctionalGroupsSequence)[0], tag)[0];
}

export interface MapHeat { label: string; width: number; height: number; /** Heat 0..255 (real world value in [0,1] × 255), row-major. */ heat: Uint8Array }

/**
 * 8-bit heat of a 16-bit Parametric Map: stored values through its Real World Value Mapping (the plugin's
 * maps hold heat in [0,1], unit UCUM "1"). Throws naming the map when it is not one the overlay can show.
 */
export function heatFromParametricMap(md: DicomJson, frame: Uint8Array, what: string): MapHeat {
  const width = Number(str(md, PM_TAG.Columns)), height = Number(str(md, PM_TAG.Rows));
  if (str(md, PM_TAG.BitsAllocated) !== "16") throw new Error(`${what}: only 16-bit integer maps are shown (Bits Allocated ${str(md, PM_TAG.BitsAllocated)})`);
  const rwvm = frameGroup(md, PM_TAG.RealWorldValueMappingSequence);
  const unit = str(seq(rwvm, TAG.MeasurementUnitsCodeSequence)[0], TAG.CodeValue);
  if (!rwvm || unit !== "1") throw new Error(`${what}: no Real World Value Mapping to a unitless heat (UCUM "1"; got ${unit ?? "none"})`);
  const mapping: LinearValueMapping = {
    first: Number(str(rwvm, PM_TAG.RealWorldValueFirstValueMapped)), last: Number(str(rwvm, PM_TAG.RealWorldValueLastValueMapped)),
    slope: Number(str(rwvm, PM_TAG.RealWorldValueSlope)), intercept: Number(str(rwvm, PM_TAG.RealWorldValueIntercept)),
  };
  const n = width * height;
  if (frame.byteLength < 2 * n) throw new Error(`${what}: frame 1 has ${frame.byteLength} bytes, ${width}x${height} 16-bit needs ${2 * n}`);
  const view = new DataView(frame.buffer, frame.byteOffset, 2 * n);
  const stored = new Array<number>(n);
  const signed = str(md, PM_TAG.PixelRepresentation) === "1";
  for (let i = 0; i < n; i++) stored[i] = signed ? view.getInt16(2 * i, true) : view.getUint16(2 * i, true);
  const values = realWorldValues(stored, mapping);
  const heat = new Uint8Array(n);
  for (let i = 0; i < n; i++) heat[i] = Number.isNaN(values[i]!) ? 0 : Math.round(Math.min(1, Math.max(0, values[i]!)) * 255);
  const code = seq(seq(rwvm, PM_TAG.QuantityDefinitionSequence)[0], TAG.ConceptCodeSequence)[0];
  const label = labelFromCode(str(code, TAG.CodeValue), str(code, TAG.CodingSchemeDesignator), str(code, TAG.CodeMeaning) ?? "");
  return { label, width, height, heat };
}

/** The first part of a multipart/related body (WADO-RS frames): the bytes between its headers and the next boundary. */
export function firstMultipartPart(body: Uint8Array, contentType: string): Uint8Array {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!boundary) return body; // a single-part answer
  const find = (needle: Uint8Array, from: number) => {
    outer: for (let i = from; i <= body.length - needle.length; i++) {
      for (let j = 0; j < needle.length; j++) if (body[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  };
  const enc = new TextEncoder();
  const start = find(enc.encode(`--${boundary}`), 0);
  const headersEnd = start < 0 ? -1 : find(enc.encode("\r\n\r\n"), start);
  if (headersEnd < 0) throw new Error("multipart answer without a part");
  const end = find(enc.encode(`\r\n--${boundary}`), headersEnd + 4);
  return body.subarray(headersEnd + 4, end < 0 ? body.length : end);
}

/** WADO-RS: metadata and frame 1 of a map (`instanceUrl` = …/studies/S/series/R/instances/I), as 8-bit heat. */
export async function fetchParametricMapHeat(instanceUrl: string, auth: RequestAuth): Promise<MapHeat> {
  const [md] = await fetchDicomJson(`${instanceUrl}/metadata`, auth);
  if (!md) throw new Error(`Parametric Map ${instanceUrl}: no metadata`);
  const headers: Record<string, string> = { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  const r = await fetch(`${instanceUrl}/frames/1`, { headers });
  if (!r.ok) throw new Error(`Parametric Map ${instanceUrl}: frame 1 HTTP ${r.status}`);
  const frame = firstMultipartPart(new Uint8Array(await r.arrayBuffer()), r.headers.get("content-type") ?? "");
  return heatFromParametricMap(md, frame, `Parametric Map ${instanceUrl}`);
}
