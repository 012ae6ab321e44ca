import { resolve } from "node:path";
import type { Command } from "commander";
import { CliError } from "../main.ts";
import { intOption, modelCommand } from "./model.ts";

export function register(program: Command): void {
  modelCommand(program)
    .command("demo")
    .description("write the project's trained demo model (rebuilt deterministically from models/demo: seed + trained head + card)")
    .requiredOption("--out <dir>", "model folder to write (model.onnx + model-card.json)")
    .option("--pack <trainedDir>", "instead: store a model trained from `cxr model init --seed <seed>` as models/demo")
    .option("--seed <s>", "with --pack: the trunk's init seed", intOption("--seed", 0))
    .action(async (o: { out: string; pack?: string; seed?: number }) => {
      // Loaded here, not at startup: demo.ts reaches the trainer (tfjs) and the report plots (vega), which other commands do not need.
      const { buildDemoModel, packDemoModel } = await import("../../training/demo.ts");
      if (o.pack) {
        if (o.seed === undefined) throw new CliError("--pack needs --seed (the seed of the trunk's random initialisation)");
        const spec = packDemoModel(resolve(o.pack), o.seed, resolve(o.out));
        process.stdout.write(`${resolve(o.out)}: demo = seed ${spec.trunk.seed} trunk + head ${spec.head.sha256.slice(0, 12)}, device UID ${spec.card.deviceUid}\n`);
        return;
      }
      const card = buildDemoModel(resolve(o.out));
      process.stdout.write(`${resolve(o.out)}: ${card.name} ${card.version}, input ${card.input.size}, device UID ${card.deviceUid}\n`);
    });
}
