import { execFileSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers/tmp.ts";

const REPO = join(import.meta.dirname, "..", "..");

describe("cxr status on a data folder of the previous release", () => {
  it("opens (and upgrades) its store and prints the studies per state, the exports and the quarantine", () => {
    const tmp = tempDir("cxr-status-");
    try {
      copyFileSync(join(REPO, "test", "fixtures", "store-v0", "store.sqlite"), join(tmp.dir, "store.sqlite"));
      const out = JSON.parse(execFileSync(process.execPath, ["bin/cxr.js", "status", "--data-dir", tmp.dir, "--json"], { cwd: REPO, encoding: "utf8" })) as {
        store: string; counts: Record<string, number>; studies: { studyInstanceUid: string; state: string }[]; exports: Record<string, { sent: boolean }[]>; quarantined: unknown[];
      };
      expect(out.store).toBe("sqlite");
      expect(out.counts).toEqual({ received: 1, queued: 1, processing: 1, done: 1, exported: 1, failed: 1, rejected: 1 });
      expect(out.studies).toHaveLength(7);
      expect(out.exports["1.2.826.0.1.3680043.10.9.4"]).toEqual([expect.objectContaining({ sent: true })]);
      expect(out.quarantined).toHaveLength(2);
      const table = execFileSync(process.execPath, ["bin/cxr.js", "status", "--data-dir", tmp.dir], { cwd: REPO, encoding: "utf8" });
      expect(table).toMatch(/received 1 {2}queued 1 {2}processing 1 {2}done 1 {2}exported 1 {2}failed 1 {2}rejected 1/);
    } finally {
      tmp.cleanup();
    }
  });
});
