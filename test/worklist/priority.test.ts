import { describe, expect, it } from "vitest";
import { priorityConfigSchema } from "../../src/config/worklist.ts";
import { compareWorklist, prioritize } from "../../src/worklist/priority.ts";
import { study } from "./memory-store.ts";

const defaults = priorityConfigSchema.parse({});

describe("prioritize", () => {
  it("makes a positive Pneumothorax urgent by default, with the reason in numbers", () => {
    const p = prioritize(study("1", { probs: { Pneumothorax: 0.91, Cardiomegaly: 0.2 }, thresholds: { Pneumothorax: 0.42 } }), defaults);
    // weight 2 × 0.91 = 1.82
    expect(p).toEqual({ priority: "urgent", score: 1.82, reason: "Pneumothorax 0.91 ≥ 0.42" });
  });

  it("counts the other positive findings of an urgent study", () => {
    const p = prioritize(study("1b", { probs: { Pneumothorax: 0.6, Effusion: 0.7, Cardiomegaly: 0.9, Nodule: 0.8 } }), defaults);
    // weights: Effusion 1.4, Pneumothorax 1.2, Cardiomegaly 0.9, Nodule 0.8 — all ≥ 0.5
    expect(p).toEqual({ priority: "urgent", score: 1.4, reason: "Effusion 0.70 ≥ 0.50; Pneumothorax 0.60 ≥ 0.50 (+2 other positive findings)" });
  });

  it("makes a positive non-urgent finding 'review', strongest first", () => {
    const p = prioritize(study("2", { probs: { Cardiomegaly: 0.7, Nodule: 0.6, Effusion: 0.3 } }), defaults);
    // Effusion 0.3 is below 0.5; max weight×p: Cardiomegaly 0.7, Effusion 2×0.3 = 0.6, Nodule 0.6
    expect(p.priority).toBe("review");
    expect(p.score).toBeCloseTo(0.7, 10);
    expect(p.reason).toBe("Cardiomegaly 0.70 ≥ 0.50; Nodule 0.60 ≥ 0.50");
  });

  it("is routine when nothing reaches its operating point, naming the closest", () => {
    const p = prioritize(study("3", { probs: { Cardiomegaly: 0.45, Effusion: 0.1 }, thresholds: { Cardiomegaly: 0.5, Effusion: 0.05 * 4 } }), defaults);
    // ratios: Cardiomegaly 0.45/0.5 = 0.9, Effusion 0.1/0.2 = 0.5; score max(0.45, 2×0.1)=0.45
    expect(p).toEqual({ priority: "routine", score: 0.45, reason: "no finding at its operating point (closest: Cardiomegaly 0.45 < 0.50)" });
  });

  it("lets a configured operating point replace the card's threshold", () => {
    const cfg = priorityConfigSchema.parse({ findings: { Pneumothorax: { weight: 2, operatingPoint: 0.3 }, Effusion: { weight: 2 } } });
    const rec = study("4", { probs: { Pneumothorax: 0.35 }, thresholds: { Pneumothorax: 0.6 } });
    expect(prioritize(rec, defaults).priority).toBe("routine");
    expect(prioritize(rec, cfg)).toEqual({ priority: "urgent", score: 0.7, reason: "Pneumothorax 0.35 ≥ 0.30" });
  });

  it("lets weights decide what is urgent", () => {
    const cfg = priorityConfigSchema.parse({ urgentWeight: 3, findings: { Nodule: { weight: 3 } } });
    // Pneumothorax is no longer listed: default weight 1 < 3 → review; Nodule weight 3 → urgent
    expect(prioritize(study("5", { probs: { Pneumothorax: 0.9 } }), cfg).priority).toBe("review");
    expect(prioritize(study("6", { probs: { Nodule: 0.55 } }), cfg)).toEqual({ priority: "urgent", score: 3 * 0.55, reason: "Nodule 0.55 ≥ 0.50" });
  });

  it("keeps failed and rejected studies visible as 'review' with their reason", () => {
    expect(prioritize(study("7", { state: "rejected", reason: "Modality CT is not a projection radiograph" }), defaults)).toEqual({
      priority: "review",
      score: 0,
      reason: "rejected: Modality CT is not a projection radiograph — not triaged, read without AI",
    });
    expect(prioritize(study("8", { state: "failed", reason: "decode failed" }), defaults).reason).toBe("failed: decode failed — not triaged, read without AI");
    expect(prioritize(study("9", { state: "failed" }), defaults).reason).toMatch(/^failed: no reason recorded/);
  });

  it("a study the image-content gate stopped reads 'not analysed: <reason>', priority review", () => {
    expect(prioritize(study("10", { state: "rejected", reason: "not analysed: inverted polarity (score 1.00 ≥ 0.83)" }), defaults)).toEqual({
      priority: "review",
      score: 0,
      reason: "not analysed: inverted polarity (score 1.00 ≥ 0.83) — read without AI",
    });
  });

  it("lists studies still in the pipeline as routine, saying they are pending", () => {
    expect(prioritize(study("10", { state: "processing" }), defaults)).toEqual({ priority: "routine", score: 0, reason: "pending: processing — not triaged yet" });
  });

  it("does not call a finished study without findings routine", () => {
    expect(prioritize(study("11", { state: "exported" }), defaults).priority).toBe("review");
  });
});

describe("compareWorklist", () => {
  it("orders by priority, then score, then arrival", () => {
    const rows = [
      { studyInstanceUid: "a", priority: "routine" as const, score: 0.9, receivedAt: "2026-01-01T00:00:00Z" },
      { studyInstanceUid: "b", priority: "review" as const, score: 0.6, receivedAt: "2026-01-01T00:00:02Z" },
      { studyInstanceUid: "c", priority: "urgent" as const, score: 1.1, receivedAt: "2026-01-01T00:00:05Z" },
      { studyInstanceUid: "d", priority: "review" as const, score: 0.6, receivedAt: "2026-01-01T00:00:01Z" },
      { studyInstanceUid: "e", priority: "review" as const, score: 0.8, receivedAt: "2026-01-01T00:00:09Z" },
    ];
    expect(rows.sort(compareWorklist).map((r) => r.studyInstanceUid)).toEqual(["c", "e", "d", "b", "a"]);
  });
});

describe("priority configuration", () => {
  it("refuses an entry for a name that is not a finding label (a misspelt urgent finding)", () => {
    const r = priorityConfigSchema.safeParse({ findings: { Pneumothorax: { weight: 2 }, Pneumothoraks: { weight: 2 } } });
    expect(r.success).toBe(false);
    expect(r.error!.issues).toEqual([expect.objectContaining({ path: ["findings", "Pneumothoraks"], message: expect.stringMatching(/^'Pneumothoraks' is not a finding label \(one of Cardiomegaly, .*Pneumothorax, .*Consolidation\)$/) })]);
  });
});
