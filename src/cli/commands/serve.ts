import type { Command } from "commander";
import { ConfigError, loadServiceConfig, type ConfigOverrides } from "../../config/service.ts";
import { startService } from "../../service.ts";
import { CliError } from "../main.ts";

function portOption(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`${flag} must be a port number 0-65535, got "${v}"`);
    return n;
  };
}

interface ServeFlags {
  config?: string;
  port?: number;
  aeTitle?: string;
  bind?: string;
  destination: string[];
  dataDir?: string;
  model?: string;
  httpPort?: number;
  apiToken?: string;
}

export function register(program: Command): void {
  program
    .command("serve")
    .description("run the DICOM service: C-STORE SCP → intake → inference → SR/SC → C-STORE SCU / STOW-RS, plus the worklist API")
    .option("--config <file>", "service configuration (JSON or YAML); flags below override it")
    .option("--port <n>", "DICOM port of the listener", portOption("--port"))
    .option("--ae-title <AET>", "AE title of the listener")
    .option("--bind <address>", "address the listener binds to (default 127.0.0.1)")
    .option("--destination <AET@host:port>", "C-STORE destination for results (repeatable; replaces the file's destinations)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option("--data-dir <dir>", "folder of the spool, quarantine, results and the SQLite store")
    .option("--model <dir>", "model folder (model.onnx + model-card.json)")
    .option("--http-port <n>", "HTTP port of the worklist API", portOption("--http-port"))
    .option("--api-token <token>", "bearer token of the worklist API (added to the file's tokens)")
    .action(async (flags: ServeFlags) => {
      const overrides: ConfigOverrides = {
        port: flags.port,
        aeTitle: flags.aeTitle,
        bind: flags.bind,
        destinations: flags.destination,
        dataDir: flags.dataDir,
        model: flags.model,
        httpPort: flags.httpPort,
        apiToken: flags.apiToken,
      };
      let config;
      try {
        config = loadServiceConfig(flags.config, overrides);
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message);
        throw err;
      }
      const service = await startService(config);
      if (service.api && config.api.tokens.length === 0) {
        process.stderr.write(`cxr serve: no api.tokens configured; this run's worklist: ${service.api.url}/?token=${service.api.token}\n`);
      }
      await new Promise<void>((resolve, reject) => {
        const stop = (signal: string) => {
          process.stderr.write(`cxr serve: ${signal}, stopping\n`);
          service.close().then(resolve, (err: Error) => reject(new CliError(`stopping the service: ${err.message}`)));
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
    });
}
