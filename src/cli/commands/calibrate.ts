import { resolve } from "node:path";
import type { Command } from "commander";
import { CliError } from "../main.ts";
import { runtimeOptions } from "./model.ts";
import type { Provider } from "../../inference/providers.ts";

export function register(program: Command): void {
  const command = program
    .command("calibrate")
    .description("set the model's operating points from a site's labelled studies: a new model folder (same weights, new card version recording data, target and achieved sensitivity/specificity with 95% CIs) and a report of how each threshold moved")
    .requiredOption("--labels <csv>", "labels CSV (Image or SOPInstanceUID/AccessionNumber, the 14 labels, PatientId[, Split]), as cxr eval")
    .requiredOption("--model <dir>", "model folder whose card is recalibrated")
    .requiredOption("--out <dir>", "output folder: model/ (the new model folder), calibration.md, calibration.json")
    .option("--images <dir>", "folder of the images: the model is run on them (as cxr eval)")
    .option("--predictions <csv>", "predictions.csv of an earlier cxr eval / cxr audit of this model instead of --images")
    .option("--split <name>", "only rows with this Split value")
    .option("--target <rule>", "sensitivity=<0..1> or specificity=<0..1> for every label", "sensitivity=0.95")
    .option("--per-label <label=rule>", "a label's own rule, e.g. Pneumothorax=sensitivity:0.98 (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[]);
  for (const o of runtimeOptions()) command.addOption(o);
  command.action(async (o: { labels: string; model: string; out: string; images?: string; predictions?: string; split?: string; target: string; perLabel: string[]; provider: Provider; threads?: number }) => {
    const { calibrateModel } = await import("../../evaluation/calibrate.ts");
    const { parseTarget } = await import("../../evaluation/operating-point.ts");
    const { DatasetError } = await import("../../training/dataset.ts");
    try {
      const perLabel = Object.fromEntries(
        o.perLabel.map((s) => {
          const i = s.indexOf("=");
          if (i < 1) throw new CliError(`--per-label "${s}": expected <label>=<sensitivity|specificity>:<value>`);
          return [s.slice(0, i), parseTarget(s.slice(i + 1))];
        }),
      );
      const r = await calibrateModel({
        labels: resolve(o.labels), model: resolve(o.model), out: resolve(o.out), images: o.images && resolve(o.images), predictions: o.predictions && resolve(o.predictions),
        split: o.split, target: parseTarget(o.target), perLabel, classifier: { provider: o.provider, threads: o.threads },
      });
      const moved = r.moves.filter((m) => m.chosen && m.chosen.threshold !== m.previous.threshold).length;
      process.stdout.write(`${r.out.model}: ${r.model.previousVersion} → ${r.model.version}, ${moved} of ${r.moves.length} thresholds moved (${r.images} images); report ${r.out.report}\n`);
    } catch (err) {
      if (err instanceof DatasetError || (err instanceof Error && /^target "/.test(err.message))) throw new CliError(err.message);
      throw err;
    }
  });
}
