/**
 * The study store as the worklist reads it: the contract of src/intake/store.ts (issue #5, see
 * docs/ARCHITECTURE.md), restated structurally so the worklist depends only on the fields it uses.
 */
export type StudyState = "received" | "queued" | "processing" | "done" | "exported" | "failed" | "rejected";
export const STUDY_STATES: readonly StudyState[] = ["received", "queued", "processing", "done", "exported", "failed", "rejected"];

export interface StudyFinding {
  label: string;
  probability: number;
  threshold: number;
  positive: boolean;
}

export interface StudyRecord {
  studyInstanceUid: string;
  state: StudyState;
  history: { state: StudyState; at: string }[];
  receivedAt: string;
  updatedAt: string;
  reason?: string;
  patientName?: string;
  patientId?: string;
  accessionNumber?: string;
  studyDescription?: string;
  findings?: StudyFinding[];
  heatmaps?: { label: string; path: string }[];
  outputs?: { sr?: string; sc?: string[] };
  model?: { name: string; version: string; deviceUid: string; training: string };
}

export interface StudyStore {
  list(): StudyRecord[];
  get(studyInstanceUid: string): StudyRecord | undefined;
  onChange(listener: (rec: StudyRecord) => void): () => void;
}

/** What the worklist shows about the model: the card's identity and its "trained on / metrics" line. */
export interface ModelInfo {
  name: string;
  version: string;
  deviceUid: string;
  architecture?: string;
  training: { summary: string; data?: string; metrics?: Record<string, unknown> };
}
