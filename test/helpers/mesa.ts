import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const repo = join(import.meta.dirname, "../..");
/** The Mesa 25 lavapipe environment written by scripts/setup-mesa.sh (run by scripts/setup.sh). */
export const MESA_ENV = join(repo, ".cache/mesa/env.sh");

/** CI must have the lavapipe; elsewhere a missing one skips the test with a message naming the file. */
export function requireMesa(): boolean {
  if (existsSync(MESA_ENV)) return true;
  if (process.env.CI) throw new Error(`${MESA_ENV} is missing: scripts/setup.sh (scripts/setup-mesa.sh) must run before the tests`);
  console.warn(`skipping: ${MESA_ENV} is missing; run scripts/setup-mesa.sh`);
  return false;
}

/**
 * Runs `node ...args` in the repo root with the Mesa environment sourced first. Dawn picks its Vulkan
 * driver when it starts, so the environment has to be set before the process begins, not by the test.
 */
export function spawnNodeWithMesa(args: string[], timeout: number): SpawnSyncReturns<string> {
  return spawnSync("bash", ["-c", 'source "$0" && exec "$@"', MESA_ENV, process.execPath, ...args], { cwd: repo, encoding: "utf8", timeout });
}
