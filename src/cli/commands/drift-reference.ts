import { join, resolve } from "node:path";
import type { Command } from "commander";
import { runtimeOptions } from "./model.ts";
import type { Provider } from "../../inference/providers.ts";

export function register(program: Command): void {
  const command = program
    .command("drift-reference")
    .description("the reference sample for drift monitoring: the model's probabilities and input image statistics on labelled validation images (cxr serve compares its recent studies with it)")
    .requiredOption("--labels <csv>", "labels CSV, as cxr eval")
    .requiredOption("--images <dir>", "folder of the images")
    .requiredOption("--model <dir>", "model folder")
    .option("--split <name>", "only rows with this Split value (e.g. valid)")
    .option("--out <file>", "where to write it (default <model>/drift-reference.json, where cxr serve looks)");
  for (const o of runtimeOptions()) command.addOption(o);
  command.action(async (o: { labels: string; images: string; model: string; split?: string; out?: string; provider: Provider; threads?: number }) => {
    const { buildDriftReference } = await import("../../drift/reference.ts");
    const { writeDriftReference } = await import("../../drift/monitor.ts");
    const ref = await buildDriftReference({ labels: resolve(o.labels), images: resolve(o.images), model: resolve(o.model), split: o.split, classifier: { provider: o.provider, threads: o.threads } });
    const out = resolve(o.out ?? join(o.model, "drift-reference.json"));
    writeDriftReference(out, ref);
    process.stdout.write(`${out}: ${ref.source}\n`);
  });
}
