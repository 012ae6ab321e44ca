import type { CodedConcept } from "../../model/card.ts";

/**
 * Every coded concept the result objects use besides the findings themselves (those are in
 * src/model/labels.ts FINDING_CODES), with where each comes from. DCM codes are from DICOM PS3.16
 * Annex D; the context group (CID) is named where PS3.16 lists the code in one.
 */
function code(value: string, scheme: string, meaning: string): CodedConcept {
  return { value, scheme, meaning };
}

export const CODES = {
  // TID 1500 structure (PS3.16 TID 1500, 1600, 1410, 1501, 4108)
  imagingMeasurementReport: code("126000", "DCM", "Imaging Measurement Report"), // CID 7021, TID 1500 root
  languageOfContent: code("121049", "DCM", "Language of Content Item and Descendants"), // TID 1204
  englishUS: code("en-US", "RFC5646", "English (United States)"), // CID 5000 (BCP 47 tag)
  procedureReported: code("121058", "DCM", "Procedure reported"), // TID 1500 row 3
  // SNOMED CT 399208008 |Plain chest X-ray (procedure)|: says "chest radiograph" without implying a
  // view count (LOINC 36643-5 is "XR Chest 2 Views", wrong for a single frontal image).
  plainChestXRay: code("399208008", "SCT", "Plain chest X-ray"),
  imageLibrary: code("111028", "DCM", "Image Library"), // TID 1600
  imageLibraryGroup: code("126200", "DCM", "Image Library Group"), // TID 1600
  imagingMeasurements: code("126010", "DCM", "Imaging Measurements"), // TID 1500 row 6
  measurementGroup: code("125007", "DCM", "Measurement Group"), // TID 1501 / TID 1410 row 1
  trackingIdentifier: code("112039", "DCM", "Tracking Identifier"), // TID 4108
  trackingUniqueIdentifier: code("112040", "DCM", "Tracking Unique Identifier"), // TID 4108
  finding: code("121071", "DCM", "Finding"), // TID 1501 / 1410 "Finding"
  imageRegion: code("111030", "DCM", "Image Region"), // TID 1410 row 7 (SCOORD)
  // The classifier's output for the finding. DCM 122157 "Probability" names exactly this; the
  // CAD alternative (111012 "Certainty of Finding", CID 6048) is defined in percent for CAD marks.
  probability: code("122157", "DCM", "Probability"),
  // UCUM annotation unit: dimensionless ("{...}" is unity), value in [0, 1].
  unitProbability: code("{probability}", "UCUM", "probability"),
  // Qualitative evaluation at the card's operating point: SNOMED CT presence concepts, as used by
  // IHE IDR / HL7 imaging findings (705057003 |Presence (property)|, 52101004 |Present|, 2667000 |Absent|).
  presence: code("705057003", "SCT", "Presence"),
  present: code("52101004", "SCT", "Present"),
  absent: code("2667000", "SCT", "Absent"),
  // Observer context (TID 1002 / TID 1004)
  observerType: code("121005", "DCM", "Observer Type"),
  device: code("121007", "DCM", "Device"), // CID 270
  deviceObserverUid: code("121012", "DCM", "Device Observer UID"),
  deviceObserverName: code("121013", "DCM", "Device Observer Name"),
  deviceObserverManufacturer: code("121014", "DCM", "Device Observer Manufacturer"),
  deviceObserverModelName: code("121015", "DCM", "Device Observer Model Name"),
  // Contributing Equipment Sequence purpose: CID 7005 "Contributing Equipment Purposes of Reference".
  // 109102 "Processing Equipment" is the member for equipment that derived new content from the
  // images (109103 is "Modifying Equipment", for equipment that changed the original instances).
  processingEquipment: code("109102", "DCM", "Processing Equipment"),
  // Source Image Sequence purpose for the SC: CID 7202 "Source Image Purposes of Reference".
  sourceImageForProcessing: code("121322", "DCM", "Source image for image processing operation"),
  // Parametric Map (src/results/pm): Derivation Code (CID 7203 "Image Derivation"): the model's heat grid
  // is resampled onto the source image's extent (what the heat is, the Derivation Description says); the
  // Quantity Definition's concept name (SCT 246205007 |Quantity|) and the unit of a dimensionless heat in
  // [0,1] (UCUM unity).
  // TID 1501 "Source of Measurement" (IMAGE): in a finding's group it references that finding's
  // Parametric Map, the spatial form of the evidence the probability was computed with.
  sourceOfMeasurement: code("121112", "DCM", "Source of Measurement"),
  spatialResampling: code("113085", "DCM", "Spatial resampling"),
  quantity: code("246205007", "SCT", "Quantity"),
  unitNone: code("1", "UCUM", "no units"),
} as const;
