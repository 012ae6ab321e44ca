import type { CodedConcept } from "../../model/card.ts";

/**
 * SR content items (PS3.3 C.17.3) as dcmjs naturalized objects. One builder per value type, each
 * taking the relationship to its parent first, so a template reads top-down like its PS3.16 table.
 */
export type RelationshipType = "CONTAINS" | "HAS OBS CONTEXT" | "HAS CONCEPT MOD" | "HAS PROPERTIES" | "HAS ACQ CONTEXT" | "INFERRED FROM" | "SELECTED FROM";
export type ContentItem = Record<string, unknown>;

export interface ImageReference { sopClassUid: string; sopInstanceUid: string }

export function codeSequence(c: CodedConcept): Record<string, string>[] {
  return [{ CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning }];
}

function item(relationship: RelationshipType | undefined, valueType: string, name: CodedConcept | undefined, rest: ContentItem): ContentItem {
  return {
    ...(relationship ? { RelationshipType: relationship } : {}),
    ValueType: valueType,
    ...(name ? { ConceptNameCodeSequence: codeSequence(name) } : {}),
    ...rest,
  };
}

export function container(relationship: RelationshipType | undefined, name: CodedConcept, children: ContentItem[], extra: ContentItem = {}): ContentItem {
  return item(relationship, "CONTAINER", name, { ContinuityOfContent: "SEPARATE", ...extra, ContentSequence: children });
}

export function codeItem(relationship: RelationshipType, name: CodedConcept, value: CodedConcept): ContentItem {
  return item(relationship, "CODE", name, { ConceptCodeSequence: codeSequence(value) });
}

/** TEXT values are UT; longer than 64 characters is fine, but a TEXT never carries a newline here. */
export function textItem(relationship: RelationshipType, name: CodedConcept, value: string): ContentItem {
  return item(relationship, "TEXT", name, { TextValue: value });
}

export function uidrefItem(relationship: RelationshipType, name: CodedConcept, uid: string): ContentItem {
  return item(relationship, "UIDREF", name, { UID: uid });
}

/**
 * NUM with both the DS text (at most 16 characters) and the exact double in Floating Point Value
 * (PS3.3 C.18.1.1: FD may accompany DS when DS cannot hold the full precision).
 */
export function numItem(relationship: RelationshipType, name: CodedConcept, value: number, unit: CodedConcept): ContentItem {
  return item(relationship, "NUM", name, {
    MeasuredValueSequence: [{
      MeasurementUnitsCodeSequence: codeSequence(unit),
      NumericValue: formatDecimalString(value),
      FloatingPointValue: value,
    }],
  });
}

export function imageItem(relationship: RelationshipType, ref: ImageReference, name?: CodedConcept): ContentItem {
  return item(relationship, "IMAGE", name, {
    ReferencedSOPSequence: [{ ReferencedSOPClassUID: ref.sopClassUid, ReferencedSOPInstanceUID: ref.sopInstanceUid }],
  });
}

/**
 * SCOORD in the referenced image's pixel space (PS3.3 C.18.6.1.2: column\row pairs, 0.0\0.0 is the
 * top left corner of the top left pixel), with its one SELECTED FROM image as PS3.3 requires.
 */
export function scoordItem(relationship: RelationshipType, name: CodedConcept, graphicType: "POINT" | "POLYLINE", points: number[], selectedFrom: ImageReference): ContentItem {
  return item(relationship, "SCOORD", name, {
    GraphicType: graphicType,
    GraphicData: points,
    ContentSequence: [imageItem("SELECTED FROM", selectedFrom)],
  });
}

/** A DS value of at most 16 characters (PS3.5 6.2), as precise as fits. */
export function formatDecimalString(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`cannot encode ${value} as DS`);
  for (let digits = 12; digits >= 1; digits--) {
    const s = String(Number(value.toPrecision(digits)));
    if (s.length <= 16) return s;
  }
  return value.toExponential(6);
}
