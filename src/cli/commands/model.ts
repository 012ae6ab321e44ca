import { resolve } from "node:path";
import { Option, type Command } from "commander";
import { CliError } from "../main.ts";
import { isProvider, PROVIDERS, type Provider } from "../../inference/providers.ts";
import { readModelCard, type ModelCard } from "../../model/card.ts";
import { initModelDir, verifyModelWeights } from "../../model/model-dir.ts";

/**
 * The `model` command group. Other files add subcommands to it (e.g. model-demo.ts adds `demo`); since
 * command files register in file-name order, whoever comes first creates it and the others reuse it.
 */
export function modelCommand(program: Command): Command {
  return program.commands.find((c) => c.name() === "model") ?? program.command("model").description("DenseNet121-14 models: create, import, inspect");
}

function numberList(name: string): (v: string) => [number, number, number] {
  return (v) => {
    const parts = v.split(",").map(Number);
    if (parts.some((n) => !Number.isFinite(n)) || (parts.length !== 1 && parts.length !== 3)) throw new CliError(`${name} takes one number or three comma-separated numbers, got "${v}"`);
    return (parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts) as [number, number, number];
  };
}

/** Commander parser of an integer option (`--seed`, `--input-size`, `--batch`, ...): anything else is a one-line CliError. */
export function intOption(name: string, min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new CliError(`${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}

/** `--provider <name>` parser: one of the execution providers, or a CliError naming them. */
export function providerOption(v: string): Provider {
  if (!isProvider(v)) throw new CliError(`--provider must be one of ${PROVIDERS.join(", ")}, got "${v}"`);
  return v;
}

/** The runtime options every command that runs the model takes (infer, eval, audit), for `.addOption`. */
export function runtimeOptions(): Option[] {
  return [
    new Option("--provider <name>", `execution provider: ${PROVIDERS.join(", ")}`).argParser(providerOption).default("cpu" as Provider),
    new Option("--threads <N>", "ORT intra-op threads per session (default: ORT's, one per core)").argParser(intOption("--threads", 1)),
  ];
}

export function formatCard(card: ModelCard, dir: string): string {
  const lines = [
    `${card.name} ${card.version}  (${dir})`,
    `  manufacturer   ${card.manufacturer}`,
    `  architecture   ${card.architecture}`,
    `  device UID     ${card.deviceUid}`,
    `  weights sha256 ${card.weightsSha256}`,
    `  input          ${card.input.layout} 3x${card.input.size}x${card.input.size}, pixelScale ${card.input.pixelScale}, mean [${card.input.mean.join(", ")}], std [${card.input.std.join(", ")}]`,
    `  outputs        probabilities=${card.outputs.probabilities} features=${card.outputs.features}`,
    ...(card.source ? [`  imported from  ${card.source.file}: ${card.source.format}, ${card.source.contents}${card.source.writer ? `, written by ${card.source.writer}` : ""}; head ${card.source.head}`] : []),
    `  training       ${card.training.summary}`,
    ...(card.training.data ? [`  data           ${card.training.data}`] : []),
    ...(card.training.metrics ? [`  metrics        ${JSON.stringify(card.training.metrics)}`] : []),
    `  created        ${card.createdAt}`,
    `  labels (output order):`,
    ...card.labels.map((l, i) => `    ${String(i).padStart(2)} ${l.name.padEnd(20)} ${`${l.code.scheme} ${l.code.value}`.padEnd(16)} ${l.code.meaning.padEnd(22)} threshold ${l.threshold} (${l.thresholdMethod})`),
  ];
  return lines.join("\n");
}

export function register(program: Command): void {
  const model = modelCommand(program);

  model
    .command("init")
    .description("create a DenseNet121-14 with seeded random weights (Keras default init): <out>/model.onnx + <out>/model-card.json")
    .requiredOption("--input-size <N>", "square input size in pixels (e.g. 224, 320)", intOption("--input-size", 32))
    .requiredOption("--seed <S>", "random seed (same seed, same weights)", intOption("--seed", 0))
    .requiredOption("--out <dir>", "model folder to write")
    .action((opts: { inputSize: number; seed: number; out: string }) => {
      const dir = resolve(opts.out);
      const card = initModelDir({ inputSize: opts.inputSize, seed: opts.seed, out: dir });
      process.stdout.write(`${dir}: ${card.name}, input ${card.input.size}, device UID ${card.deviceUid}\n`);
    });

  model
    .command("import")
    .description("import a DenseNet121 into a model folder: Keras 2 HDF5 (weights or full model), Keras 3 .keras/.weights.h5/legacy .h5, a PyTorch state dict as safetensors, or an ONNX classifier (told apart by content)")
    .argument("<file>", "the model file (.h5, .hdf5, .keras, .weights.h5, .safetensors, .onnx)")
    .requiredOption("--out <dir>", "model folder to write")
    .option("--input-size <N>", "square input size (default: the file's own — a fixed ONNX input, a .keras InputLayer — else 224)", intOption("--input-size", 32))
    .option("--seed <S>", "Keras trunk-only weights: seed of the Dense head's random init", intOption("--seed", 0), 0)
    .option("--labels <list>", "Keras/safetensors: comma-separated labels of the head's outputs, in order (default: the seed's 14 NIH labels for Keras, CheXNet's order for safetensors)")
    .option("--labels-map <json|builtin:xrv|builtin:chexnet>", "ONNX: which output slot is which label, plus input channels and normalisation")
    .option("--pixel-scale <x>", "override the card's pixelScale", (v: string) => numberList("--pixel-scale")(v)[0])
    .option("--mean <m>", "override the card's per-channel mean (one or three numbers, in pixelScale units)", numberList("--mean"))
    .option("--std <s>", "override the card's per-channel std (one or three numbers)", numberList("--std"))
    .option("--name <name>", "model name for the card")
    .option("--version <v>", "model version for the card (default: start of the weights' SHA-256)")
    .action(async (file: string, opts: { out: string; inputSize?: number; seed: number; labels?: string; labelsMap?: string; pixelScale?: number; mean?: [number, number, number]; std?: [number, number, number]; name?: string; version?: string }) => {
      const dir = resolve(opts.out);
      let card: ModelCard;
      try {
        // Loaded here, not at startup: the importers pull in h5wasm and onnxruntime, which other commands do not need.
        const { importModel } = await import("../../model/import.ts");
        const { loadLabelsMap } = await import("../../model/onnx-import.ts");
        const input = { ...(opts.pixelScale !== undefined && { pixelScale: opts.pixelScale }), ...(opts.mean && { mean: opts.mean }), ...(opts.std && { std: opts.std }) };
        card = await importModel(resolve(file), {
          out: dir,
          inputSize: opts.inputSize,
          seed: opts.seed,
          labels: opts.labels?.split(",").map((s) => s.trim()),
          labelsMap: opts.labelsMap ? loadLabelsMap(opts.labelsMap) : undefined,
          input,
          name: opts.name,
          version: opts.version,
        });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      process.stdout.write(`${dir}: ${card.training.summary}; device UID ${card.deviceUid}\n`);
    });

  model
    .command("info")
    .description("print a model folder's card (after checking model.onnx holds the weights the card names)")
    .argument("<dir>", "model folder (model.onnx + model-card.json)")
    .option("--json", "print the card as JSON")
    .action((dirArg: string, opts: { json?: boolean }) => {
      const dir = resolve(dirArg);
      let card: ModelCard;
      try {
        card = readModelCard(dir);
        verifyModelWeights(dir, card);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      process.stdout.write(opts.json ? `${JSON.stringify(card, null, 2)}\n` : `${formatCard(card, dir)}\n`);
    });
}
