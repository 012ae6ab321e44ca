import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const CXR_BIN = fileURLToPath(new URL("../../bin/cxr.js", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** `node bin/cxr.js <args>` as a child process, its output in `logPath` (and kept in memory). */
export function spawnCxr(args: string[], logPath: string): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [CXR_BIN, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logPath);
  let text = "";
  for (const s of [child.stdout!, child.stderr!]) {
    s.on("data", (d: Buffer) => {
      text += d.toString();
      log.write(d);
    });
  }
  child.on("exit", () => log.end());
  return { child, output: () => text };
}

/** Polls `check` until it returns a value (not undefined), failing after `ms` with `what` and the log's tail. */
export async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined> | T | undefined, logPath?: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      const tail = logPath ? `\n--- ${logPath}:\n${readFileSync(logPath, "utf8").split("\n").slice(-30).join("\n")}` : "";
      throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${tail}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** SIGINT, then the exit status (SIGKILL after `ms`, reported as such). */
export function interrupt(child: ChildProcess, ms = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
    child.kill("SIGINT");
  });
}
