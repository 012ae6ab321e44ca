import type { FindingResult, InferenceResult } from "../../inference/classifier.ts";

/**
 * Which findings get a Parametric Map (and a heatmap PNG for the worklist):
 * - "all": every finding of the card;
 * - "positive": the findings at or above their operating point, or, when none is, the most probable
 *   one (so a reader can still see where the model looked);
 * - "none": no map.
 */
export type MapSelection = "all" | "positive" | "none";
export const MAP_SELECTIONS = ["all", "positive", "none"] as const;
export const DEFAULT_MAP_SELECTION: MapSelection = "positive";

/** The findings of `result` that get a map under `selection`, in card order. */
export function mappedFindings(result: InferenceResult, selection: MapSelection = DEFAULT_MAP_SELECTION): FindingResult[] {
  if (selection === "none") return [];
  if (selection === "all") return [...result.findings];
  const positives = result.findings.filter((f) => f.positive);
  if (positives.length) return positives;
  const top = [...result.findings].sort((a, b) => b.probability - a.probability)[0];
  return top ? [top] : [];
}
