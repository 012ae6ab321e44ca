import type { LabeledRow, LabelTable } from "./dataset.ts";
import { seededRandom, shuffled } from "../model/rng.ts";

/**
 * The seed's `check_for_leakage(df1, df2, patient_col)`: true when any patient appears in both
 * sets. A patient in two splits lets the model memorise the person instead of the finding, and
 * inflates validation/test scores.
 */
export function checkForLeakage(a: readonly Pick<LabeledRow, "patientId">[], b: readonly Pick<LabeledRow, "patientId">[]): boolean {
  return sharedPatients(a, b).length > 0;
}

export function sharedPatients(a: readonly Pick<LabeledRow, "patientId">[], b: readonly Pick<LabeledRow, "patientId">[]): string[] {
  const inA = new Set(a.map((r) => r.patientId));
  return [...new Set(b.map((r) => r.patientId))].filter((p) => inA.has(p)).sort();
}

export interface LeakageFinding {
  splits: [string, string];
  patients: string[];
}

/** Every pair of splits that shares a patient. */
export function findSplitLeakage(rows: readonly LabeledRow[]): LeakageFinding[] {
  const bySplit = new Map<string, LabeledRow[]>();
  for (const r of rows) {
    if (r.split === undefined) continue;
    const list = bySplit.get(r.split) ?? [];
    list.push(r);
    bySplit.set(r.split, list);
  }
  const names = [...bySplit.keys()].sort();
  const out: LeakageFinding[] = [];
  for (let i = 0; i < names.length; i++)
    for (let j = i + 1; j < names.length; j++) {
      const patients = sharedPatients(bySplit.get(names[i]!)!, bySplit.get(names[j]!)!);
      if (patients.length) out.push({ splits: [names[i]!, names[j]!], patients });
    }
  return out;
}

export class LeakageError extends Error {
  constructor(readonly findings: LeakageFinding[]) {
    super(
      `patient leakage between splits: ${findings
        .map((f) => `${f.splits[0]}/${f.splits[1]} share ${f.patients.length} patient(s) (${f.patients.slice(0, 5).join(", ")}${f.patients.length > 5 ? ", …" : ""})`)
        .join("; ")} — fix the split (cxr split) or pass --allow-leakage to train anyway`,
    );
  }
}

/**
 * Patient-level split: all images of a patient go to the same split. Patients are shuffled with the
 * seed and assigned greedily so each split's image count approaches its fraction.
 */
export function patientSplit(rows: readonly LabeledRow[], fractions: Record<string, number>, seed: number): Map<string, string> {
  const names = Object.keys(fractions);
  const total = names.reduce((s, n) => s + fractions[n]!, 0);
  if (!(total > 0) || names.some((n) => !(fractions[n]! >= 0))) throw new Error(`invalid split fractions ${JSON.stringify(fractions)}`);
  const byPatient = new Map<string, number>();
  for (const r of rows) byPatient.set(r.patientId, (byPatient.get(r.patientId) ?? 0) + 1);
  const patients = shuffled([...byPatient.keys()].sort(), seededRandom(seed));
  const target = new Map(names.map((n) => [n, (fractions[n]! / total) * rows.length]));
  const count = new Map(names.map((n) => [n, 0]));
  const assignment = new Map<string, string>();
  for (const p of patients) {
    // The split furthest below its target (relative) takes the next patient.
    let best = names[0]!;
    let bestDeficit = -Infinity;
    for (const n of names) {
      const t = target.get(n)!;
      const deficit = t === 0 ? -Infinity : (t - count.get(n)!) / t;
      if (deficit > bestDeficit) {
        bestDeficit = deficit;
        best = n;
      }
    }
    assignment.set(p, best);
    count.set(best, count.get(best)! + byPatient.get(p)!);
  }
  return assignment;
}

/** The table's CSV with a `Split` column set (added or overwritten) from a patient assignment. */
export function withSplitColumn(table: LabelTable, assignment: Map<string, string>): { header: string[]; cells: string[][] } {
  let splitCol = table.header.indexOf("Split");
  const header = table.header.slice();
  if (splitCol < 0) {
    header.push("Split");
    splitCol = header.length - 1;
  }
  const cells = table.cells.map((c, i) => {
    const out = c.slice();
    out[splitCol] = assignment.get(table.rows[i]!.patientId)!;
    return out;
  });
  return { header, cells };
}
