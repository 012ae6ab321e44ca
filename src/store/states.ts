import type { StudyState } from "./types.ts";

/**
 * The study life cycle as the only allowed moves. Every state change of every backend is checked
 * here, so a bug that would skip a stage (e.g. "queued" → "exported") fails loudly instead of
 * leaving a study somewhere no worker looks.
 *
 *   received → queued | rejected                       assembly (series selection)
 *   queued → processing                                a worker claims it (lease)
 *   processing → done | failed | rejected | queued     results; failure; nothing eligible; lease lost / restart
 *   done → exported                                    every object sent everywhere
 *   done | exported | failed | rejected → received     new or changed instances: assembled again
 */
export const TRANSITIONS: Readonly<Record<StudyState, readonly StudyState[]>> = {
  received: ["queued", "rejected"],
  queued: ["processing"],
  processing: ["done", "failed", "rejected", "queued"],
  done: ["exported", "received"],
  exported: ["received"],
  failed: ["received"],
  rejected: ["received"],
};

/** States a new instance re-opens (sends back to assembly); the others are assembled later anyway. */
export const REOPENED_BY_NEW_INSTANCE: readonly StudyState[] = ["done", "exported", "failed", "rejected"];

export function canTransition(from: StudyState, to: StudyState): boolean {
  return TRANSITIONS[from].includes(to);
}

export class IllegalTransitionError extends Error {
  constructor(readonly study: string, readonly from: StudyState, readonly to: StudyState) {
    super(`study ${study}: ${from} → ${to} is not an allowed state change`);
  }
}

/** Throws when `from` → `to` is not allowed (a programming error, never a race). */
export function assertTransition(study: string, from: StudyState, to: StudyState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(study, from, to);
}
