import { PACKAGE_VERSION } from "../dicom/write.ts";
import type { ModelCard } from "../model/card.ts";
import { codeSequence } from "./sr/content.ts";
import { CODES } from "./sr/codes.ts";

/**
 * The equipment that made a result object is this software running the model of `card`:
 * General Equipment (and Enhanced General Equipment, whose four attributes are Type 1) name the
 * model's manufacturer, model name and versions. Device Serial Number has no physical serial to
 * name, so it carries the model's Device UID, which identifies the exact weights.
 */
export function equipmentAttributes(card: ModelCard): Record<string, unknown> {
  return {
    Manufacturer: card.manufacturer,
    ManufacturerModelName: card.name,
    DeviceSerialNumber: card.deviceUid,
    SoftwareVersions: softwareVersions(card),
  };
}

export function softwareVersions(card: ModelCard): string[] {
  return [card.version, `cxr-triage ${PACKAGE_VERSION}`];
}

/**
 * Contributing Equipment Sequence (0018,A001) item naming the algorithm, as IHE AIR asks of every
 * AI result object: purpose "Processing Equipment" (CID 7005), the model's Device UID.
 */
export function contributingEquipment(card: ModelCard, contributionDateTime: string): Record<string, unknown>[] {
  return [{
    PurposeOfReferenceCodeSequence: codeSequence(CODES.processingEquipment),
    Manufacturer: card.manufacturer,
    ManufacturerModelName: card.name,
    SoftwareVersions: softwareVersions(card),
    DeviceUID: card.deviceUid,
    ContributionDateTime: contributionDateTime,
    ContributionDescription: `${card.name} ${card.version}: chest X-ray finding probabilities and class activation maps (${card.architecture})`,
  }];
}
