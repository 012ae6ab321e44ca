import { resolve } from "node:path";
import type { Command } from "commander";
import { CliError } from "../main.ts";
import { intOption, runtimeOptions } from "./model.ts";
import type { Provider } from "../../inference/providers.ts";

export function register(program: Command): void {
  const command = program
    .command("eval")
    .description("evaluate a model on labelled images: metrics.json (AUROC + bootstrap 95% CI), predictions.csv, report.html, roc/calibration/class-frequency PNG+SVG")
    .requiredOption("--labels <csv>", "labels CSV (Image or SOPInstanceUID/AccessionNumber, the 14 labels, PatientId[, Split])")
    .requiredOption("--images <dir>", "folder of the images (PNG/JPEG by file name, or DICOM files matched by UID/accession)")
    .requiredOption("--model <dir>", "model folder (model.onnx + model-card.json)")
    .requiredOption("--out <dir>", "output folder")
    .option("--split <name>", "only rows with this Split value (without a Split column every row is used)")
    .option("--bootstrap <n>", "bootstrap resamples for the CIs", intOption("--bootstrap", 1), 1000)
    .option("--seed <s>", "bootstrap seed", intOption("--seed", 0), 1);
  for (const o of runtimeOptions()) command.addOption(o);
  command.action(async (o: { labels: string; images: string; model: string; out: string; split?: string; bootstrap: number; seed: number; provider: Provider; threads?: number }) => {
    // Loaded here, not at startup: the evaluation pulls in onnxruntime and the plotting stack (vega, resvg).
    const { evaluateModel } = await import("../../evaluation/evaluate.ts");
    const { DatasetError } = await import("../../training/dataset.ts");
    try {
      const { metrics } = await evaluateModel({ labels: resolve(o.labels), images: resolve(o.images), model: resolve(o.model), out: resolve(o.out), split: o.split, bootstrapIterations: o.bootstrap, seed: o.seed, classifier: { provider: o.provider, threads: o.threads } });
      process.stdout.write(`${resolve(o.out)}: ${metrics.n_images} images, mean AUROC ${metrics.mean_auroc?.toFixed(4) ?? "n/a"}, ${metrics.skipped.length} skipped\n`);
    } catch (err) {
      if (err instanceof DatasetError) throw new CliError(err.message);
      throw err;
    }
  });
}
