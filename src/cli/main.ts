import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Command, CommanderError } from "commander";

/**
 * Each file in ./commands exports `register(program)`, adding one subcommand; main discovers them
 * so that every stage owns its own command-line surface.
 */
export interface CommandModule {
  register(program: Command): void;
}

/** Thrown by commands for expected failures: printed as one line, exit code 1 (or `exitCode`). */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export async function buildProgram(): Promise<Command> {
  const program = new Command("cxr")
    .description("cxr-triage: chest X-ray triage beside a PACS (DICOM node, DenseNet121-14 + GradCAM, SR/SC results, worklist)")
    .showHelpAfterError()
    .exitOverride();
  const dir = join(dirname(fileURLToPath(import.meta.url)), "commands");
  const files = readdirSync(dir).filter((f) => /\.ts$/.test(f) && !f.endsWith(".d.ts")).sort();
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as CommandModule;
    mod.register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help" ? 0 : err.exitCode || 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`cxr: ${message.split("\n")[0]}\n`);
    if (process.env.CXR_DEBUG) process.stderr.write(`${(err as Error).stack ?? ""}\n`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}
