import type { PriorityConfig } from "../config/worklist.ts";
import { NOT_ANALYSED } from "../gate/not-analysed.ts";
import type { StudyRecord } from "./study.ts";

export type Priority = "urgent" | "review" | "routine";
export const PRIORITY_ORDER: readonly Priority[] = ["urgent", "review", "routine"];

export interface PriorityResult {
  priority: Priority;
  /** max(weight × probability) over the study's findings; 0 without findings. Sorts within a class. */
  score: number;
  /** Why the study has its priority, in words a reader checks against the findings. */
  reason: string;
}

/** One finding as the worklist judges it: the configured operating point replaces the card's threshold. */
export interface JudgedFinding {
  label: string;
  probability: number;
  /** The operating point in force (configured, else the model card's threshold). */
  threshold: number;
  positive: boolean;
  weight: number;
}

export function judgeFindings(rec: StudyRecord, cfg: PriorityConfig): JudgedFinding[] {
  return (rec.findings ?? []).map((f) => {
    const own = cfg.findings[f.label];
    const threshold = own?.operatingPoint ?? f.threshold;
    return { label: f.label, probability: f.probability, threshold, positive: f.probability >= threshold, weight: own?.weight ?? cfg.defaultWeight };
  });
}

const fmt = (x: number) => x.toFixed(2);
const describe = (f: JudgedFinding) => `${f.label} ${fmt(f.probability)} ${f.positive ? "≥" : "<"} ${fmt(f.threshold)}`;

/**
 * The worklist's priority of a study. Every study gets one, so the list stays complete (passive
 * notification): studies that failed or were rejected are "review" — nobody triaged them, a reader
 * must look — and the reason says so; studies still in the pipeline are "routine" with a reason
 * naming their state, and move once results arrive.
 */
export function prioritize(rec: StudyRecord, cfg: PriorityConfig): PriorityResult {
  if (rec.state === "rejected" && rec.reason?.startsWith(NOT_ANALYSED)) {
    // The image-content gate stopped it: the reason already says what the reader must know.
    return { priority: "review", score: 0, reason: `${rec.reason} — read without AI` };
  }
  if (rec.state === "failed" || rec.state === "rejected") {
    return { priority: "review", score: 0, reason: `${rec.state}: ${rec.reason ?? "no reason recorded"} — not triaged, read without AI` };
  }
  if (rec.state === "received" || rec.state === "queued" || rec.state === "processing") {
    return { priority: "routine", score: 0, reason: `pending: ${rec.state} — not triaged yet` };
  }
  const judged = judgeFindings(rec, cfg);
  if (judged.length === 0) {
    return { priority: "review", score: 0, reason: `${rec.state} without findings — not triaged, read without AI` };
  }
  const score = Math.max(...judged.map((f) => f.weight * f.probability));
  // Strongest first, so the reason starts with what drove the priority.
  const byStrength = [...judged].sort((a, b) => b.weight * b.probability - a.weight * a.probability);
  const urgent = byStrength.filter((f) => f.positive && f.weight >= cfg.urgentWeight);
  if (urgent.length > 0) {
    // The urgent findings explain the class; the other positive ones are counted so none seems absent.
    const others = byStrength.filter((f) => f.positive).length - urgent.length;
    return { priority: "urgent", score, reason: urgent.map(describe).join("; ") + (others > 0 ? ` (+${others} other positive finding${others > 1 ? "s" : ""})` : "") };
  }
  const positive = byStrength.filter((f) => f.positive);
  if (positive.length > 0) return { priority: "review", score, reason: positive.map(describe).join("; ") };
  const highest = [...judged].sort((a, b) => b.probability / b.threshold - a.probability / a.threshold)[0]!;
  return { priority: "routine", score, reason: `no finding at its operating point (closest: ${describe(highest)})` };
}

/**
 * Worklist order: priority class, then score (high first), then arrival (oldest first, it has waited
 * longest). The order is fully determined by these visible columns, so it never changes unexplained.
 */
export function compareWorklist(a: { priority: Priority; score: number; receivedAt: string; studyInstanceUid: string }, b: typeof a): number {
  return (
    PRIORITY_ORDER.indexOf(a.priority) - PRIORITY_ORDER.indexOf(b.priority) ||
    b.score - a.score ||
    a.receivedAt.localeCompare(b.receivedAt) ||
    a.studyInstanceUid.localeCompare(b.studyInstanceUid)
  );
}
