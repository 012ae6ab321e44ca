/**
 * The study store as the worklist reads it: the contract of src/intake/store.ts (issue #5), re-exported
 * so the worklist's modules import it from one place.
 */
export { STUDY_STATES } from "../intake/store.ts";
export type { FindingResult, StudyRecord, StudyState, StudyStore } from "../intake/store.ts";

/** What the worklist shows about the model: the card's identity and its "trained on / metrics" line (a ModelCard fits). */
export interface ModelInfo {
  name: string;
  version: string;
  deviceUid: string;
  architecture?: string;
  training: { summary: string; data?: string; metrics?: Record<string, unknown> };
}
