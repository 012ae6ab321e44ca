import type { ModelCard } from "../model/card.ts";
import { contributingEquipment } from "./equipment.ts";
import { dicomDateTime, type ResultInput } from "./input.ts";
import { copyPatientAndStudy, sourceReference, type SourceReference } from "./source.ts";

/** What every result object (SR, SC) of one source image is made from; computed once per builder call. */
export interface ResultBasis {
  ref: SourceReference;
  /** Validated Patient, General Study and Patient Study attributes of the source. */
  patientStudy: Record<string, unknown>;
  /** Creation time of the objects: `input.now`, or the current time. */
  now: ReturnType<typeof dicomDateTime>;
}

/** Throws ResultInputError naming the source file (or its SOP Instance UID) when its identity is unusable. */
export function resultBasis(input: ResultInput): ResultBasis {
  const what = input.image.source.path || String(input.source.SOPInstanceUID ?? "source");
  return {
    ref: sourceReference(input.source, what),
    patientStudy: copyPatientAndStudy(input.source, what).attributes,
    now: dicomDateTime(input.now ?? new Date()),
  };
}

/**
 * The SOP Common Module (with the Contributing Equipment item IHE AIR asks of every AI result) and the
 * Patient, General Study and Patient Study Modules, which every result object shares with its source.
 */
export function sopCommonAndStudy(basis: ResultBasis, card: ModelCard, sopClassUid: string, sopInstanceUid: string): Record<string, unknown> {
  const { now } = basis;
  return {
    // SOP Common
    SOPClassUID: sopClassUid,
    SOPInstanceUID: sopInstanceUid,
    InstanceCreationDate: now.date,
    InstanceCreationTime: now.time,
    TimezoneOffsetFromUTC: now.offset,
    ContributingEquipmentSequence: contributingEquipment(card, `${now.date}${now.time}${now.offset}`),
    // Patient, General Study, Patient Study: validated copies of the source's
    ...basis.patientStudy,
    StudyInstanceUID: basis.ref.studyInstanceUid,
  };
}

/**
 * Body Part Examined or Laterality for a derived result series (SC, Parametric Map): CHEST (unpaired, so no
 * Laterality) is copied, which keeps the object where hanging protocols expect it. Any other body part is
 * left out: this product reports on chest radiographs only, and for a possibly paired part Laterality
 * (Type 2C) would have to be known; instead Laterality is written empty (unknown).
 */
export function bodyPartOrLaterality(source: Record<string, unknown>): Record<string, string> {
  return source.BodyPartExamined === "CHEST" ? { BodyPartExamined: "CHEST" } : { Laterality: "" };
}
