/** What the overlay and the panel show for one study, whichever source it came from. */
export interface TriageFinding {
  label: string;
  probability: number;
  /** Operating point of the model card; absent when the source does not state it (e.g. some SRs). */
  threshold?: number;
  /** probability ≥ threshold at the model's operating point. */
  positive?: boolean;
}

export interface TriageModel {
  name: string;
  version: string;
  /** e.g. "untrained — random weights": the radiologist must see when results are not from a trained model. */
  training?: string;
}

export interface TriageStudy {
  studyInstanceUid: string;
  findings: TriageFinding[];
  /**
   * Heatmaps registered to the source image (its extent, possibly a coarser grid), by finding label: the
   * plugin's 8-bit PNGs, or (format "parametric-map") the WADO-RS instance URL of its Parametric Map in the PACS.
   */
  heatmaps: { label: string; url: string; format?: "png" | "parametric-map" }[];
  model?: TriageModel;
  /** The study's worklist priority as the plugin ranks it (only the plugin knows it: absent when read from the PACS). */
  priority?: { level: string; reason?: string };
  /** SOP Instance UID of the plugin's SR in the PACS, when it names one. */
  srSopInstanceUid?: string;
  /** The radiograph the results are about, when known (from the SR's Image Library). */
  sourceSopInstanceUid?: string;
  /** The PACS DICOMweb root the plugin names for this study, if it does. */
  dicomwebUrl?: string;
  /** "plugin": the plugin's API answered; "pacs-sr": read from the plugin's SR (and Parametric Maps) in the PACS (the plugin gave no results: see notes). */
  origin: "plugin" | "pacs-sr";
  /** Why the fallback was used, or other things the reader should know. */
  notes: string[];
}

export interface RequestAuth {
  /** API token of the plugin, sent as `Authorization: Bearer` and as the `token` query parameter. */
  token?: string;
}
