import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_AUGMENTATION } from "../../training/augment.ts";
import { CliError } from "../main.ts";

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new CliError(`not a number: "${v}"`);
  return n;
};

export function register(program: Command): void {
  program
    .command("train")
    .description(
      "train a model by transfer learning: frozen trunk features (cached), classifier head with Adam + the seed's weighted loss, early stopping on valid mean AUROC; writes <out>/model.onnx + model-card.json",
    )
    .requiredOption("--labels <csv>", "labels CSV with a Split column (train/valid/test; see cxr split)")
    .requiredOption("--images <dir>", "folder of the images")
    .requiredOption("--model <dir>", "starting model folder (cxr model init / import): frozen trunk + starting head")
    .requiredOption("--out <dir>", "output model folder (also holds checkpoints/ and training.json)")
    .option("--epochs <n>", "maximum epochs", num, 30)
    .option("--seed <s>", "seed (shuffles, normalisation sample, augmentation, bootstrap)", num, 1)
    .option("--backend <name>", "cpu: head on cached trunk features (tfjs-backend-cpu); webgpu: whole network trainable (tfjs-backend-webgpu on Dawn)", "cpu")
    .option("--fine-tune <scope>", "what is trained: head (cached GAP features), last-block (dense block 5 + BN + head on cached block-5 inputs), whole (every layer); default head on cpu, whole on webgpu")
    .option("--input-size <n>", "model input size (default: the starting model's)", num)
    .option("--batch-size <n>", "batch size (default 32 for the head, 8 otherwise)", num)
    .option("--learning-rate <lr>", "Adam learning rate (default 1e-3 for the head, 1e-4 for the whole network)", num)
    .option("--patience <n>", "early stopping: epochs without a better valid mean AUROC", num, 8)
    .option("--resume", "continue from <out>/checkpoints", false)
    .option("--cache <dir>", "feature cache folder", ".cache/features")
    .option("--train-split <name>", "Split value of the training rows", "train")
    .option("--valid-split <name>", "Split value of the validation rows", "valid")
    .option("--test-split <name>", "Split value of the test rows", "test")
    .option("--allow-leakage", "train even if splits share patients (scores will be optimistic; recorded in the card)", false)
    .option("--augment-copies <n>", "augmented copies per training image (features cached per copy); 0 = off", num, 0)
    .option("--hflip", "allow horizontal flips in augmentation (off by default: laterality is anatomy)", false)
    .action(async (o: Record<string, unknown>) => {
      if (o.backend !== "cpu" && o.backend !== "webgpu") throw new CliError(`--backend must be cpu or webgpu, got "${String(o.backend)}"`);
      // Loaded here, not at startup: the trainers pull in tfjs, onnxruntime and the plotting stack, which other commands do not need.
      const { DatasetError } = await import("../../training/dataset.ts");
      const { LeakageError } = await import("../../training/leakage.ts");
      const { trainFullNetwork } = await import("../../training/full-trainer.ts");
      const { trainModel } = await import("../../training/train.ts");
      try {
        const common = {
          labels: resolve(o.labels as string),
          images: resolve(o.images as string),
          model: resolve(o.model as string),
          out: resolve(o.out as string),
          epochs: o.epochs as number,
          seed: o.seed as number,
          inputSize: o.inputSize as number | undefined,
          batchSize: (o.batchSize as number | undefined) ?? 32,
          learningRate: (o.learningRate as number | undefined) ?? 1e-3,
          patience: o.patience as number,
          resume: o.resume as boolean,
          cacheDir: resolve(o.cache as string),
          splits: { train: o.trainSplit as string, valid: o.validSplit as string, test: o.testSplit as string },
          allowLeakage: o.allowLeakage as boolean,
          augmentation: { ...DEFAULT_AUGMENTATION, copies: o.augmentCopies as number, horizontalFlip: o.hflip as boolean },
        };
        const scope = (o.fineTune as string | undefined) ?? (o.backend === "webgpu" ? "whole" : "head");
        if (!["head", "last-block", "whole"].includes(scope)) throw new CliError(`--fine-tune must be head, last-block or whole, got "${scope}"`);
        if (scope === "head" && o.backend !== "cpu") throw new CliError("--fine-tune head runs on the cpu backend (cached features); use --backend cpu");
        if (scope !== "head") {
          if ((o.augmentCopies as number) > 0 || o.resume) throw new CliError(`--fine-tune ${scope} does not support --augment-copies or --resume (the head trainer does)`);
          const r = await trainFullNetwork({ ...common, backend: o.backend as "cpu" | "webgpu", scope: scope as "whole" | "last-block", learningRate: (o.learningRate as number | undefined) ?? 1e-4, batchSize: (o.batchSize as number | undefined) ?? 8 });
          process.stdout.write(
            `${r.outDir}: ${scope === "whole" ? "whole network" : "last dense block"} on ${r.backend}, ${r.imagesPerSecond.toFixed(2)} images/s per training step; device UID ${r.card.deviceUid}; valid mean AUROC ${r.run.initialValidMeanAuroc.toFixed(4)} → ${r.valid.mean_auroc?.toFixed(4)}\n`,
          );
          return;
        }
        const r = await trainModel(common);
        process.stdout.write(
          `${r.outDir}: device UID ${r.card.deviceUid}; valid mean AUROC ${r.head.initialValidMeanAuroc.toFixed(4)} → ${r.valid.mean_auroc?.toFixed(4)}; test mean AUROC ${r.test.mean_auroc?.toFixed(4)}\n`,
        );
      } catch (err) {
        if (err instanceof LeakageError || err instanceof DatasetError) throw new CliError(err.message);
        throw err;
      }
    });
}
