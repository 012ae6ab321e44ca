import { deriveUid } from "../../dicom/uid.ts";
import type { FindingResult } from "../../inference/classifier.ts";
import { displayName } from "../../model/labels.ts";
import { resultBasis, sopCommonAndStudy } from "../common.ts";
import { equipmentAttributes } from "../equipment.ts";
import type { ResultInput } from "../input.ts";
import { PARAMETRIC_MAP_STORAGE } from "../pm/map.ts";
import { mappedFindings } from "../pm/selection.ts";
import { hotRegion } from "../region.ts";
import { CODES } from "./codes.ts";
import { codeItem, codeSequence, container, imageItem, numItem, scoordItem, textItem, uidrefItem, type ContentItem, type ImageReference } from "./content.ts";

export const COMPREHENSIVE_3D_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.34";
/** DICOM Content Mapping Resource (PS3.16), the owner of TID 1500. */
const DCMR_UID = "1.2.840.10008.8.1.1";
/** Series Number of the result series: fixed, far from the modality's own numbering. */
export const SR_SERIES_NUMBER = 9001;

/**
 * The Tracking Unique Identifier of one finding's measurement group: stable for a given SR instance
 * and label, so a re-made (same UID) SR tracks the same findings.
 */
export function trackingUid(srInstanceUid: string, label: string): string {
  return deriveUid("cxr-triage-tracking", srInstanceUid, label);
}

/**
 * A Comprehensive 3D SR with a TID 1500 "Imaging Measurement Report" of one chest radiograph, as
 * IHE AI Results (AIR) asks: the algorithm as the observer device, the source image in the Image
 * Library, and per finding (in card order) one Measurement Group with tracking identifiers, the
 * finding's coded concept, the probability (NUM) and its presence at the card's operating point
 * (CODE). A finding at or above its threshold also gets the heatmap's hot region as an Image Region
 * (SCOORD POLYLINE on the source image), i.e. the group follows TID 1410; the others follow TID 1501.
 */
export function buildStructuredReport(input: ResultInput): Record<string, unknown> {
  const { result, uids } = input;
  const basis = resultBasis(input);
  const { ref, now } = basis;
  const card = result.card;
  const sourceImage: ImageReference = { sopClassUid: ref.sopClassUid, sopInstanceUid: ref.sopInstanceUid };

  const observerContext: ContentItem[] = [
    codeItem("HAS OBS CONTEXT", CODES.observerType, CODES.device),
    uidrefItem("HAS OBS CONTEXT", CODES.deviceObserverUid, card.deviceUid),
    textItem("HAS OBS CONTEXT", CODES.deviceObserverName, `${card.name} ${card.version}`),
    textItem("HAS OBS CONTEXT", CODES.deviceObserverManufacturer, card.manufacturer),
    textItem("HAS OBS CONTEXT", CODES.deviceObserverModelName, card.name),
  ];

  const mapped = new Set(mappedFindings(result, input.mapSelection).map((f) => f.label));
  const maps: ImageReference[] = result.findings.filter((f) => mapped.has(f.label))
    .map((f) => ({ sopClassUid: PARAMETRIC_MAP_STORAGE, sopInstanceUid: uids.sopInstanceUidPm(f.label) }));
  const groups = result.findings.map((f) => measurementGroup(input, f, sourceImage, mapped.has(f.label)));

  const root = container(undefined, CODES.imagingMeasurementReport, [
    codeItem("HAS CONCEPT MOD", CODES.languageOfContent, CODES.englishUS),
    ...observerContext,
    codeItem("HAS CONCEPT MOD", CODES.procedureReported, CODES.plainChestXRay),
    container("CONTAINS", CODES.imageLibrary, [
      container("CONTAINS", CODES.imageLibraryGroup, [imageItem("CONTAINS", sourceImage)]),
    ]),
    container("CONTAINS", CODES.imagingMeasurements, groups),
  ], {
    ContentTemplateSequence: [{ MappingResource: "DCMR", MappingResourceUID: DCMR_UID, TemplateIdentifier: "1500" }],
  });

  return {
    ...sopCommonAndStudy(basis, card, COMPREHENSIVE_3D_SR_STORAGE, uids.sopInstanceUidSr),
    // SR Document Series
    Modality: "SR",
    SeriesInstanceUID: uids.seriesInstanceUidSr,
    SeriesNumber: SR_SERIES_NUMBER,
    SeriesDescription: `AI findings (${card.name} ${card.version})`.slice(0, 64),
    ReferencedPerformedProcedureStepSequence: [],
    // General Equipment + Enhanced General Equipment
    ...equipmentAttributes(card),
    // SR Document General
    InstanceNumber: 1,
    CompletionFlag: "COMPLETE",
    VerificationFlag: "UNVERIFIED",
    ContentDate: now.date,
    ContentTime: now.time,
    PerformedProcedureCodeSequence: codeSequence(CODES.plainChestXRay),
    CurrentRequestedProcedureEvidenceSequence: evidence(ref.studyInstanceUid, ref.seriesInstanceUid, [sourceImage]),
    // The Parametric Maps the content references are not evidence acquired for the procedure, but every
    // instance the content references must be listed in one of the two (PS3.3 C.17.2.3).
    ...(maps.length ? { PertinentOtherEvidenceSequence: evidence(ref.studyInstanceUid, uids.seriesInstanceUidPm, maps) } : {}),
    // Type 1C, present when this document replaces another (PS3.3 C.17.2.1): a re-processed study's new result.
    ...(input.predecessor && { PredecessorDocumentsSequence: evidence(input.predecessor.studyInstanceUid, input.predecessor.seriesInstanceUid, [input.predecessor]) }),
    // SR Document Content (root content item)
    ...root,
  };
}

/** Hierarchical SOP Instance Reference Macro (PS3.3 Table C.17-3) for instances of one series: the source, the maps, or the replaced SR. */
function evidence(studyInstanceUid: string, seriesInstanceUid: string, instances: ImageReference[]): Record<string, unknown>[] {
  return [{
    StudyInstanceUID: studyInstanceUid,
    ReferencedSeriesSequence: [{
      SeriesInstanceUID: seriesInstanceUid,
      ReferencedSOPSequence: instances.map((i) => ({ ReferencedSOPClassUID: i.sopClassUid, ReferencedSOPInstanceUID: i.sopInstanceUid })),
    }],
  }];
}

function measurementGroup(input: ResultInput, f: FindingResult, sourceImage: ImageReference, hasMap: boolean): ContentItem {
  const { image, result, uids } = input;
  const children: ContentItem[] = [
    textItem("HAS OBS CONTEXT", CODES.trackingIdentifier, `${displayName(f.label)} (${result.card.name})`),
    uidrefItem("HAS OBS CONTEXT", CODES.trackingUniqueIdentifier, trackingUid(uids.sopInstanceUidSr, f.label)),
    codeItem("CONTAINS", CODES.finding, f.code),
  ];
  if (f.positive) {
    const heatmap = result.heatmaps.find((h) => h.label === f.label);
    const region = heatmap && hotRegion(heatmap, image.width, image.height);
    if (region) children.push(scoordItem("CONTAINS", CODES.imageRegion, "POLYLINE", region.polyline, sourceImage));
  }
  if (hasMap) children.push(imageItem("CONTAINS", { sopClassUid: PARAMETRIC_MAP_STORAGE, sopInstanceUid: uids.sopInstanceUidPm(f.label) }, CODES.sourceOfMeasurement));
  children.push(
    numItem("CONTAINS", CODES.probability, f.probability, CODES.unitProbability),
    codeItem("CONTAINS", CODES.presence, f.positive ? CODES.present : CODES.absent),
  );
  return container("CONTAINS", CODES.measurementGroup, children);
}
