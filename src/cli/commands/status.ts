import { existsSync } from "node:fs";
import type { Command } from "commander";
import { loadServiceConfig } from "../../config/service.ts";
import { openStore, STUDY_STATES, type StudyRecord } from "../../store/index.ts";
import { dataPaths } from "../../service.ts";
import { CliError } from "../main.ts";

export function register(program: Command): void {
  program
    .command("status")
    .description("show the service's queue and recent studies (reads the configured store: the data directory's SQLite file or PostgreSQL)")
    .option("--config <file>", "service configuration (for its dataDir)")
    .option("--data-dir <dir>", "data directory of the service")
    .option("--limit <n>", "studies to list", "20")
    .option("--json", "print JSON instead of a table")
    .action(async (flags: { config?: string; dataDir?: string; limit: string; json?: boolean }) => {
      const config = loadServiceConfig(flags.config, { dataDir: flags.dataDir });
      const path = dataPaths(config.dataDir).store;
      if (config.store.kind === "sqlite" && !existsSync(path)) throw new CliError(`no service store at ${path} (has cxr serve run with this data directory?)`);
      const store = await openStore(config.store, { dataDir: config.dataDir });
      try {
        const counts = await store.countsByState();
        const studies = (await store.list()).slice(0, Number(flags.limit) || 20);
        const exports = Object.fromEntries(await Promise.all(studies.map(async (s) => [s.studyInstanceUid, await store.exports(s.studyInstanceUid)] as const)));
        const q = await store.quarantined();
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ dataDir: config.dataDir, store: config.store.kind, counts, studies, exports, quarantined: q }, null, 2)}\n`);
          return;
        }
        const lines = [`data dir ${config.dataDir}`, STUDY_STATES.map((s) => `${s} ${counts[s]}`).join("  "), ""];
        lines.push(["state".padEnd(10), "updated".padEnd(24), "study".padEnd(64), "exports", "reason"].join(" "));
        for (const s of studies) lines.push(row(s, exports[s.studyInstanceUid] ?? []));
        if (q.length) lines.push("", `quarantine: ${q.length} file(s); latest: ${q.at(-1)!.path}: ${q.at(-1)!.reason}`);
        process.stdout.write(`${lines.join("\n")}\n`);
      } finally {
        await store.close();
      }
    });
}

function row(s: StudyRecord, exports: { sent: boolean }[]): string {
  const sent = exports.filter((e) => e.sent).length;
  return [s.state.padEnd(10), s.updatedAt.padEnd(24), s.studyInstanceUid.padEnd(64), `${sent}/${exports.length}`.padEnd(7), s.reason ?? ""].join(" ");
}
