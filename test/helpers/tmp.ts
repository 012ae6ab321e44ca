import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh temporary folder, removed by the returned cleanup unless CXR_KEEP_TMP is set. */
export function tempDir(prefix = "cxr-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => { if (!process.env.CXR_KEEP_TMP) rmSync(dir, { recursive: true, force: true }); } };
}
