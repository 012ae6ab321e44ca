import { resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError, loadServiceConfig } from "../../config/service.ts";
import { CliError } from "../main.ts";
import { intOption, runtimeOptions } from "./model.ts";
import type { Provider } from "../../inference/providers.ts";

export function register(program: Command): void {
  const command = program
    .command("audit")
    .description("QA audit: evaluate a model over archived studies pulled from a PACS (QIDO-RS/WADO-RS, or DIMSE C-FIND/C-GET), labels from a CSV; resumable; same outputs as cxr eval plus the studies that could not be read")
    .option("--dicomweb <url>", "DICOMweb root of the PACS, e.g. http://pacs:8042/dicom-web")
    .option("--dimse <AET@host:port>", "the PACS's query/retrieve SCP instead of DICOMweb: C-FIND, then C-GET (the PACS must allow C-GET from --calling-aet)")
    .option("--calling-aet <aet>", "our AE title towards the --dimse peer", "CXR_AUDIT")
    .requiredOption("--labels <csv>", "labels CSV keyed by AccessionNumber or SOPInstanceUID (+ the 14 labels, PatientId[, Split])")
    .requiredOption("--model <dir>", "model folder (model.onnx + model-card.json)")
    .requiredOption("--out <dir>", "output folder (also holds audit-state.jsonl and the retrieved instances)")
    .option("--split <name>", "only rows with this Split value")
    .option("--fresh", "ignore the state of a previous run in --out", false)
    .option("--bootstrap <n>", "bootstrap resamples for the CIs", intOption("--bootstrap", 1), 1000)
    .option("--seed <s>", "bootstrap seed", intOption("--seed", 0), 1)
    .option("--config <file>", "service configuration (YAML/JSON) whose `selection` rules pick the image read in each study, as cxr serve would (default: the built-in rules)");
  for (const o of runtimeOptions()) command.addOption(o);
  command.action(async (o: { dicomweb?: string; dimse?: string; callingAet: string; labels: string; model: string; out: string; split?: string; fresh: boolean; bootstrap: number; seed: number; config?: string; provider: Provider; threads?: number }) => {
    // Loaded here, not at startup: the audit pulls in onnxruntime and the plotting stack (vega, resvg).
    const { auditPacs } = await import("../../evaluation/audit.ts");
    const { DatasetError } = await import("../../training/dataset.ts");
    try {
      const selection = o.config ? loadServiceConfig(resolve(o.config)).selection : undefined;
      if (!o.dicomweb === !o.dimse) throw new CliError("cxr audit: give --dicomweb <url> or --dimse <AET@host:port> (exactly one)");
      const { parseDimsePeer } = await import("../../evaluation/dimse-archive.ts");
      let dimse;
      try {
        dimse = o.dimse ? parseDimsePeer(o.dimse, o.callingAet) : undefined;
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const r = await auditPacs({ dicomweb: o.dicomweb, dimse, labels: resolve(o.labels), model: resolve(o.model), out: resolve(o.out), split: o.split, fresh: o.fresh, bootstrapIterations: o.bootstrap, seed: o.seed, classifier: { provider: o.provider, threads: o.threads }, selection });
      process.stdout.write(`${resolve(o.out)}: ${r.metrics.n_images} studies evaluated, ${r.metrics.skipped.length} not evaluated, mean AUROC ${r.metrics.mean_auroc?.toFixed(4) ?? "n/a"}\n`);
    } catch (err) {
      if (err instanceof DatasetError || err instanceof ConfigError) throw new CliError(err.message);
      throw err;
    }
  });
}
