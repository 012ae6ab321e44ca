import { findingCode } from "../../src/model/labels.ts";
import { STUDY_STATES, type StudyRecord, type StudyState, type WorklistReader } from "../../src/worklist/study.ts";

/** An in-memory WorklistReader for the API unit tests (the stores of src/store have their own contract tests). */
export class MemoryStudyStore implements WorklistReader {
  private readonly records = new Map<string, StudyRecord>();
  private readonly listeners = new Set<(rec: StudyRecord) => void>();

  async list(): Promise<StudyRecord[]> {
    return [...this.records.values()];
  }
  async get(uid: string): Promise<StudyRecord | undefined> {
    return this.records.get(uid);
  }
  async countsByState(): Promise<Record<StudyState, number>> {
    const counts = Object.fromEntries(STUDY_STATES.map((s) => [s, 0])) as Record<StudyState, number>;
    for (const r of this.records.values()) counts[r.state]++;
    return counts;
  }
  onChange(listener: (rec: StudyRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  put(rec: StudyRecord): void {
    this.records.set(rec.studyInstanceUid, rec);
    for (const l of this.listeners) l(rec);
  }
  get listenerCount(): number {
    return this.listeners.size;
  }
}

const LABELS = ["Cardiomegaly", "Effusion", "Pneumothorax", "Nodule"];
/** A study with findings at the given probabilities (threshold 0.5 unless given). */
export function study(uid: string, over: Partial<StudyRecord> & { probs?: Record<string, number>; thresholds?: Record<string, number> } = {}): StudyRecord {
  const { probs, thresholds, ...rest } = over;
  const receivedAt = rest.receivedAt ?? "2026-11-27T08:00:00.000Z";
  const state = rest.state ?? "done";
  return {
    studyInstanceUid: uid,
    state,
    history: [{ state: "received", at: receivedAt }, ...(state === "received" ? [] : [{ state, at: receivedAt }])],
    receivedAt,
    updatedAt: receivedAt,
    ...(probs && {
      findings: LABELS.filter((l) => l in probs).map((label) => {
        const threshold = thresholds?.[label] ?? 0.5;
        return { label, code: findingCode(label), probability: probs[label]!, threshold, positive: probs[label]! >= threshold };
      }),
    }),
    ...rest,
  };
}
