/**
 * The store as the worklist reads it (the WorklistReader role of src/store), re-exported so the
 * worklist's modules import it from one place.
 */
export { STUDY_STATES } from "../store/types.ts";
export type { FindingResult, StudyRecord, StudyState } from "../store/types.ts";
export type { WorklistReader } from "../store/roles.ts";

/** What the worklist shows about the model: the card's identity and its "trained on / metrics" line (a ModelCard fits). */
export interface ModelInfo {
  name: string;
  version: string;
  deviceUid: string;
  architecture?: string;
  training: { summary: string; data?: string; metrics?: Record<string, unknown> };
}
