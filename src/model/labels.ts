/**
 * The 14 NIH ChestX-ray14 findings. The default order is the seed notebook's (the order of the
 * Dense(14) head of its `pretrained_model.h5`); a model card may list them in another order, and
 * everything downstream goes by the card's order.
 */
export const NIH_LABELS = [
  "Cardiomegaly",
  "Emphysema",
  "Effusion",
  "Hernia",
  "Infiltration",
  "Mass",
  "Nodule",
  "Atelectasis",
  "Pneumothorax",
  "Pleural_Thickening",
  "Pneumonia",
  "Fibrosis",
  "Edema",
  "Consolidation",
] as const;

export type NihLabel = (typeof NIH_LABELS)[number];

export function isNihLabel(s: string): s is NihLabel {
  return (NIH_LABELS as readonly string[]).includes(s);
}

/** "Pleural_Thickening" -> "Pleural thickening": the label as people read it. */
export function displayName(label: string): string {
  const s = label.replace(/_/g, " ").toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A coded concept as DICOM carries it: (CodeValue, CodingSchemeDesignator, CodeMeaning). */
export interface FindingCode {
  value: string;
  scheme: "SCT" | "DCM";
  meaning: string;
  /** Where the code comes from: the PS3.16 context group that lists it, or the SNOMED CT concept it is. */
  source: string;
}

/**
 * The coded concept of each NIH label, used as the Finding (121071) of the TID 1500 measurement
 * groups and in the model card. Where DICOM PS3.16 lists a concept for the chest (the Chest CAD
 * context groups CID 6104 "Abnormal Opacity Finding or Feature" and CID 6105 "Abnormal Lucency
 * Finding or Feature") that code is used; the rest are SNOMED CT International concepts (SCT is the
 * scheme DICOM uses for SNOMED CT since 2019, PS3.16 section 8). No RadLex IDs are used.
 */
export const FINDING_CODES: Record<NihLabel, FindingCode> = {
  Cardiomegaly: { value: "8186001", scheme: "SCT", meaning: "Cardiomegaly", source: "SNOMED CT 8186001 |Cardiomegaly (disorder)|" },
  Emphysema: { value: "87433001", scheme: "SCT", meaning: "Pulmonary emphysema", source: "SNOMED CT 87433001 |Pulmonary emphysema (disorder)|" },
  Effusion: { value: "60046008", scheme: "SCT", meaning: "Pleural effusion", source: "SNOMED CT 60046008 |Pleural effusion (disorder)|" },
  // The NIH "Hernia" label marks hernias seen on chest radiographs, which are hiatal hernias.
  Hernia: { value: "84089009", scheme: "SCT", meaning: "Hiatal hernia", source: "SNOMED CT 84089009 |Hiatal hernia (disorder)|" },
  Infiltration: { value: "112121", scheme: "DCM", meaning: "Infiltrate", source: "DICOM PS3.16 CID 6104 (DCM 112121)" },
  Mass: { value: "4147007", scheme: "SCT", meaning: "Mass", source: "DICOM PS3.16 CID 6104 (SNOMED CT 4147007 |Mass (morphologic abnormality)|)" },
  Nodule: { value: "27925004", scheme: "SCT", meaning: "Nodule", source: "DICOM PS3.16 CID 6104 (SNOMED CT 27925004 |Nodule (morphologic abnormality)|)" },
  Atelectasis: { value: "46621007", scheme: "SCT", meaning: "Atelectasis", source: "SNOMED CT 46621007 |Atelectasis (disorder)|" },
  Pneumothorax: { value: "36118008", scheme: "SCT", meaning: "Pneumothorax", source: "DICOM PS3.16 CID 6105 (SNOMED CT 36118008 |Pneumothorax (disorder)|)" },
  Pleural_Thickening: { value: "78381009", scheme: "SCT", meaning: "Pleural thickening", source: "SNOMED CT 78381009 |Pleural thickening| (not in PS3.16)" },
  Pneumonia: { value: "233604007", scheme: "SCT", meaning: "Pneumonia", source: "SNOMED CT 233604007 |Pneumonia (disorder)|" },
  Fibrosis: { value: "112674009", scheme: "SCT", meaning: "Fibrosis", source: "SNOMED CT 112674009 |Fibrosis (morphologic abnormality)|" },
  Edema: { value: "19242006", scheme: "SCT", meaning: "Pulmonary edema", source: "SNOMED CT 19242006 |Pulmonary edema (disorder)|" },
  Consolidation: { value: "95436008", scheme: "SCT", meaning: "Lung consolidation", source: "SNOMED CT 95436008 |Lung consolidation (disorder)|" },
};

/** The coded concept of a label; throws naming the label when it has none (e.g. a card with a foreign label). */
export function findingCode(label: string): { value: string; scheme: string; meaning: string } {
  if (!isNihLabel(label)) throw new Error(`no coded concept for finding label "${label}" (known: ${NIH_LABELS.join(", ")})`);
  const { value, scheme, meaning } = FINDING_CODES[label];
  return { value, scheme, meaning };
}
