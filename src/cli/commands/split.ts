import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { DatasetError, readLabelTable, toCsv } from "../../training/dataset.ts";
import { findSplitLeakage, patientSplit, withSplitColumn } from "../../training/leakage.ts";
import { CliError } from "../main.ts";
import { intOption } from "./model.ts";

export function register(program: Command): void {
  program
    .command("split")
    .description("patient-level train/valid/test split of a labels CSV: writes the CSV with a Split column (no patient in two splits)")
    .requiredOption("--labels <csv>", "labels CSV (needs a PatientId column)")
    .requiredOption("--out <csv>", "CSV to write")
    .option("--fractions <t,v,t>", "train,valid,test fractions of images", "0.7,0.15,0.15")
    .option("--seed <s>", "shuffle seed", intOption("--seed", 0), 1)
    .action((o: { labels: string; out: string; fractions: string; seed: number }) => {
      const f = o.fractions.split(",").map(Number);
      if (f.length !== 3 || f.some((x) => !(x >= 0))) throw new CliError(`--fractions must be three non-negative numbers, got "${o.fractions}"`);
      try {
        const table = readLabelTable(resolve(o.labels), []);
        const assignment = patientSplit(table.rows, { train: f[0]!, valid: f[1]!, test: f[2]! }, o.seed);
        const { header, cells } = withSplitColumn(table, assignment);
        writeFileSync(resolve(o.out), toCsv(header, cells));
        const counts: Record<string, number> = {};
        for (const r of table.rows) counts[assignment.get(r.patientId)!] = (counts[assignment.get(r.patientId)!] ?? 0) + 1;
        const leak = findSplitLeakage(table.rows.map((r) => ({ ...r, split: assignment.get(r.patientId) })));
        if (leak.length) throw new CliError(`internal error: split left shared patients ${JSON.stringify(leak)}`);
        process.stdout.write(`${resolve(o.out)}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ")} images; ${assignment.size} patients, none in two splits\n`);
      } catch (err) {
        if (err instanceof DatasetError) throw new CliError(err.message);
        throw err;
      }
    });
}
