import { describe, expect, it } from "vitest";
import { assertTransition, canTransition, IllegalTransitionError, REOPENED_BY_NEW_INSTANCE, STUDY_STATES, TRANSITIONS, type StudyState } from "../../src/store/index.ts";

/** States reachable from `from` by allowed moves. */
function reachable(from: StudyState): Set<StudyState> {
  const seen = new Set<StudyState>([from]);
  const todo = [from];
  while (todo.length) for (const next of TRANSITIONS[todo.pop()!]) if (!seen.has(next)) seen.add(next), todo.push(next);
  return seen;
}

describe("study state machine (no database)", () => {
  it("allows exactly the life cycle's moves", () => {
    const allowed = STUDY_STATES.flatMap((from) => STUDY_STATES.filter((to) => canTransition(from, to)).map((to) => `${from}→${to}`));
    expect(allowed.sort()).toEqual([
      "done→exported", "done→received", "exported→received", "failed→received", "processing→done", "processing→failed",
      "processing→queued", "processing→rejected", "queued→processing", "received→queued", "received→rejected", "rejected→received",
    ].sort());
  });

  it("never skips a stage: results only from processing, export only after results, processing only by a claim", () => {
    for (const from of STUDY_STATES) {
      expect(canTransition(from, "done")).toBe(from === "processing");
      expect(canTransition(from, "exported")).toBe(from === "done");
      expect(canTransition(from, "processing")).toBe(from === "queued");
      expect(canTransition(from, from)).toBe(false);
    }
  });

  it("every state can reach an end (exported, failed or rejected) and every state is reachable from received", () => {
    for (const s of STUDY_STATES) {
      const r = reachable(s);
      expect(["exported", "failed", "rejected"].some((end) => r.has(end as StudyState)), s).toBe(true);
    }
    expect(reachable("received")).toEqual(new Set(STUDY_STATES));
  });

  it("a new instance re-opens exactly the states that may go back to received", () => {
    expect([...REOPENED_BY_NEW_INSTANCE].sort()).toEqual(STUDY_STATES.filter((s) => canTransition(s, "received")).sort());
  });

  it("an illegal move names the study and both states", () => {
    expect(() => assertTransition("1.2.3", "queued", "exported")).toThrow(IllegalTransitionError);
    expect(() => assertTransition("1.2.3", "queued", "exported")).toThrow("study 1.2.3: queued → exported is not an allowed state change");
    expect(() => assertTransition("1.2.3", "queued", "processing")).not.toThrow();
  });
});
