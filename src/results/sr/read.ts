import { readDicom } from "../../dicom/read.ts";
import type { CodedConcept } from "../../model/card.ts";
import { FINDING_CODES } from "../../model/labels.ts";
import { CODES } from "./codes.ts";

/** What a TID 1500 AI result SR says, read back (from this project's SRs or any alike). */
export interface AiResultsSr {
  sopInstanceUid: string;
  studyInstanceUid: string;
  device: { uid?: string; name?: string; manufacturer?: string; modelName?: string };
  /** The Image Library's images. */
  sourceImages: { sopClassUid: string; sopInstanceUid: string }[];
  /** One per Measurement Group that has a Finding and a probability, in document order. */
  findings: SrFinding[];
  /** Labels of the findings evaluated "Present". */
  positives: string[];
  /** SOP Instance UIDs of the SRs this one replaces (Predecessor Documents Sequence); empty for a first result. */
  predecessors: string[];
}

export interface SrFinding {
  /** The NIH label when the code is one of FINDING_CODES, else the code meaning. */
  label: string;
  code: CodedConcept;
  probability: number;
  /** Presence at the operating point; undefined when the group has no presence evaluation. */
  positive: boolean | undefined;
  trackingIdentifier?: string;
  trackingUid?: string;
  region?: { graphicType: string; points: number[]; sopInstanceUid?: string };
  /** SOP Instance UID of the finding's Parametric Map (TID 1501 "Source of Measurement"), when it has one. */
  parametricMap?: string;
}

export class SrReadError extends Error {
  constructor(readonly what: string, reason: string) {
    super(`${what}: ${reason}`);
    this.name = "SrReadError";
  }
}

type Item = Record<string, unknown>;

function items(value: unknown): Item[] {
  if (Array.isArray(value)) return value as Item[];
  return value && typeof value === "object" ? [value as Item] : [];
}

function concept(value: unknown): CodedConcept | undefined {
  const c = items(value)[0];
  if (!c) return undefined;
  return { value: String(c.CodeValue ?? ""), scheme: String(c.CodingSchemeDesignator ?? ""), meaning: String(c.CodeMeaning ?? "") };
}

function is(c: CodedConcept | undefined, want: CodedConcept): boolean {
  return !!c && c.value === want.value && c.scheme === want.scheme;
}

function named(children: Item[], want: CodedConcept): Item | undefined {
  return children.find((c) => is(concept(c.ConceptNameCodeSequence), want));
}

function str(value: unknown): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
}

const LABEL_BY_CODE = new Map(Object.entries(FINDING_CODES).map(([label, c]) => [`${c.scheme}|${c.value}`, label]));

function probabilityOf(num: Item, what: string): number {
  const mv = items(num.MeasuredValueSequence)[0];
  if (!mv) throw new SrReadError(what, "Probability NUM has no Measured Value Sequence");
  const fp = Array.isArray(mv.FloatingPointValue) ? mv.FloatingPointValue[0] : mv.FloatingPointValue;
  const value = typeof fp === "number" ? fp : Number(str(mv.NumericValue));
  if (!Number.isFinite(value)) throw new SrReadError(what, "Probability NUM has no numeric value");
  const unit = concept(mv.MeasurementUnitsCodeSequence);
  return unit?.value === "%" ? value / 100 : value;
}

/** Reads a TID 1500 "Imaging Measurement Report" SR (a dcmjs naturalized dataset, or a file path). */
export function readAiResultsSr(input: Record<string, unknown> | string): AiResultsSr {
  const what = typeof input === "string" ? input : `SR ${str(input.SOPInstanceUID) ?? "(no SOP Instance UID)"}`;
  const ds = typeof input === "string" ? readDicom(input, { withPixelData: false }).dataset : input;
  if (!is(concept(ds.ConceptNameCodeSequence), CODES.imagingMeasurementReport)) {
    throw new SrReadError(what, "not a TID 1500 Imaging Measurement Report (root concept is not (126000, DCM))");
  }
  const root = items(ds.ContentSequence);
  const text = (c: CodedConcept) => str(named(root, c)?.TextValue);

  const library = named(root, CODES.imageLibrary);
  const sourceImages = items(library?.ContentSequence)
    .flatMap((group) => items(group.ContentSequence))
    .flatMap((image) => items(image.ReferencedSOPSequence))
    .map((r) => ({ sopClassUid: String(r.ReferencedSOPClassUID), sopInstanceUid: String(r.ReferencedSOPInstanceUID) }));

  const measurements = named(root, CODES.imagingMeasurements);
  if (!measurements) throw new SrReadError(what, "no Imaging Measurements (126010, DCM) container");
  const findings: SrFinding[] = [];
  items(measurements.ContentSequence).forEach((group, k) => {
    if (!is(concept(group.ConceptNameCodeSequence), CODES.measurementGroup)) return;
    const children = items(group.ContentSequence);
    const code = concept(named(children, CODES.finding)?.ConceptCodeSequence);
    const num = named(children, CODES.probability);
    if (!code || !num) return;
    const presence = concept(named(children, CODES.presence)?.ConceptCodeSequence);
    const scoord = named(children, CODES.imageRegion);
    const selected = scoord && items(items(scoord.ContentSequence)[0]?.ReferencedSOPSequence)[0];
    const map = items(named(children, CODES.sourceOfMeasurement)?.ReferencedSOPSequence)[0];
    findings.push({
      label: LABEL_BY_CODE.get(`${code.scheme}|${code.value}`) ?? code.meaning,
      code,
      probability: probabilityOf(num, `${what}, measurement group ${k + 1}`),
      positive: presence ? is(presence, CODES.present) : undefined,
      trackingIdentifier: str(named(children, CODES.trackingIdentifier)?.TextValue),
      trackingUid: str(named(children, CODES.trackingUniqueIdentifier)?.UID),
      ...(scoord ? {
        region: {
          graphicType: String(scoord.GraphicType),
          points: (Array.isArray(scoord.GraphicData) ? scoord.GraphicData : []).map(Number),
          sopInstanceUid: selected ? str(selected.ReferencedSOPInstanceUID) : undefined,
        },
      } : {}),
      ...(map ? { parametricMap: str(map.ReferencedSOPInstanceUID) } : {}),
    });
  });

  return {
    sopInstanceUid: String(str(ds.SOPInstanceUID) ?? ""),
    studyInstanceUid: String(str(ds.StudyInstanceUID) ?? ""),
    device: {
      uid: str(named(root, CODES.deviceObserverUid)?.UID),
      name: text(CODES.deviceObserverName),
      manufacturer: text(CODES.deviceObserverManufacturer),
      modelName: text(CODES.deviceObserverModelName),
    },
    sourceImages,
    findings,
    positives: findings.filter((f) => f.positive).map((f) => f.label),
    predecessors: items(ds.PredecessorDocumentsSequence)
      .flatMap((study) => items(study.ReferencedSeriesSequence))
      .flatMap((series) => items(series.ReferencedSOPSequence))
      .map((r) => String(r.ReferencedSOPInstanceUID)),
  };
}
