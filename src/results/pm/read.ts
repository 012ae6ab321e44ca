import { readDicom } from "../../dicom/read.ts";
import type { CodedConcept } from "../../model/card.ts";
import { FINDING_CODES } from "../../model/labels.ts";
import { PARAMETRIC_MAP_STORAGE } from "./map.ts";
import { realWorldValues, type LinearValueMapping } from "./values.ts";

/** A Parametric Map read back: its first frame's real world values and what they are of. */
export interface ParametricMapRead {
  sopInstanceUid: string;
  studyInstanceUid: string;
  /** The quantity: the finding's code (Quantity Definition), and its NIH label when it is one of FINDING_CODES. */
  code: CodedConcept;
  label: string;
  unit: CodedConcept;
  columns: number;
  rows: number;
  mapping: LinearValueMapping;
  /** Real world values, row-major, columns x rows. */
  values: Float32Array;
  /** The image the map was derived from (Derivation Image functional group). */
  sourceSopInstanceUid?: string;
  pixelSpacing?: [number, number];
}

export class ParametricMapReadError extends Error {
  constructor(readonly what: string, reason: string) {
    super(`${what}: ${reason}`);
    this.name = "ParametricMapReadError";
  }
}

type Item = Record<string, unknown>;
const first = (v: unknown): Item | undefined => (Array.isArray(v) ? (v[0] as Item | undefined) : (v as Item | undefined));
const num = (v: unknown): number => Number(Array.isArray(v) ? v[0] : v);
const concept = (v: unknown): CodedConcept | undefined => {
  const c = first(v);
  return c ? { value: String(c.CodeValue ?? ""), scheme: String(c.CodingSchemeDesignator ?? ""), meaning: String(c.CodeMeaning ?? "") } : undefined;
};
const LABEL_BY_CODE = new Map(Object.entries(FINDING_CODES).map(([label, c]) => [`${c.scheme}|${c.value}`, label]));

/** A functional group of frame 1: per-frame if there, else shared. */
function group(ds: Item, keyword: string): Item | undefined {
  return first(first(ds.PerFrameFunctionalGroupsSequence)?.[keyword]) ?? first(first(ds.SharedFunctionalGroupsSequence)?.[keyword]);
}

/** Reads an integer (16-bit) or float Parametric Map, from a file path or a dcmjs naturalized dataset with its pixels. */
export function readParametricMap(input: string | Item): ParametricMapRead {
  const what = typeof input === "string" ? input : `Parametric Map ${String(input.SOPInstanceUID ?? "(no SOP Instance UID)")}`;
  const ds = typeof input === "string" ? readDicom(input).dataset : input;
  if (ds.SOPClassUID !== PARAMETRIC_MAP_STORAGE) throw new ParametricMapReadError(what, `not a Parametric Map (SOP Class ${String(ds.SOPClassUID)})`);
  const columns = num(ds.Columns), rows = num(ds.Rows);
  const rwvm = group(ds, "RealWorldValueMappingSequence");
  if (!rwvm) throw new ParametricMapReadError(what, "no Real World Value Mapping");
  const quantity = concept(first(rwvm.QuantityDefinitionSequence)?.ConceptCodeSequence);
  if (!quantity) throw new ParametricMapReadError(what, "the Real World Value Mapping has no Quantity Definition code");
  const unit = concept(rwvm.MeasurementUnitsCodeSequence) ?? { value: "", scheme: "", meaning: "" };
  const mapping: LinearValueMapping = {
    first: num(rwvm.RealWorldValueFirstValueMapped), last: num(rwvm.RealWorldValueLastValueMapped),
    slope: num(rwvm.RealWorldValueSlope), intercept: num(rwvm.RealWorldValueIntercept),
  };
  if (!Object.values(mapping).every(Number.isFinite)) throw new ParametricMapReadError(what, "the Real World Value Mapping is not a linear one (no slope/intercept)");
  const n = columns * rows;
  let stored: ArrayLike<number>;
  const pixels = first(ds.PixelData) as unknown as ArrayBuffer | undefined;
  const floats = first(ds.FloatPixelData) as unknown as ArrayBuffer | undefined;
  if (pixels instanceof ArrayBuffer && num(ds.BitsAllocated) === 16) {
    stored = num(ds.PixelRepresentation) === 1 ? new Int16Array(pixels, 0, n) : new Uint16Array(pixels, 0, n);
  } else if (floats instanceof ArrayBuffer) {
    stored = new Float32Array(floats, 0, n);
  } else {
    throw new ParametricMapReadError(what, "no 16-bit Pixel Data or Float Pixel Data");
  }
  const spacing = first(group(ds, "PixelMeasuresSequence")?.PixelSpacing as unknown) === undefined ? undefined
    : (group(ds, "PixelMeasuresSequence")!.PixelSpacing as unknown[]).map(Number) as [number, number];
  const source = first(first(group(ds, "DerivationImageSequence")?.SourceImageSequence) as unknown);
  return {
    sopInstanceUid: String(ds.SOPInstanceUID),
    studyInstanceUid: String(ds.StudyInstanceUID),
    code: quantity,
    label: LABEL_BY_CODE.get(`${quantity.scheme}|${quantity.value}`) ?? quantity.meaning,
    unit,
    columns,
    rows,
    mapping,
    values: realWorldValues(stored, mapping),
    ...(source ? { sourceSopInstanceUid: String(source.ReferencedSOPInstanceUID) } : {}),
    ...(spacing ? { pixelSpacing: spacing } : {}),
  };
}
