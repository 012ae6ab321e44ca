import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SOP_CLASS } from "../../src/config/service.ts";
import { part10DatasetOffset } from "../../src/dicom-listener/part10.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { openSqliteStore, type InstanceRecord } from "../../src/store/index.ts";
import { requireSharedData } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { serve, type ServedNode } from "./helpers.ts";
import { reUidStudies } from "./inputs.ts";

const STUDIES = 40;
const KILL_AFTER = 15;

/** The data set bytes of a Part 10 file (after its File Meta Information). */
const datasetOf = (file: Buffer) => file.subarray(part10DatasetOffset(file));

/**
 * storescu sends the files in order, as they are (Implicit VR Little Endian only: nothing
 * transcoded); the server is killed (-9) once `killAfter` were answered Success, in the middle of
 * the next transfer. Resolves with how many were answered Success.
 */
function sendAndKill(port: number, files: string[], node: ServedNode, killAfter: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("storescu", ["-v", "-xi", "-aet", "MODALITY", "-aec", "CXR_CRASH", "127.0.0.1", String(port), ...files], { stdio: ["ignore", "pipe", "pipe"] });
    let successes = 0;
    const count = (d: Buffer) => {
      successes += (d.toString().match(/Received Store Response \(Success\)/g) ?? []).length;
      if (successes >= killAfter && node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGKILL");
    };
    child.stdout.on("data", count);
    child.stderr.on("data", count);
    child.on("close", () => resolve(successes));
  });
}

/**
 * A crash in the middle of the spool's writes, against the real peer (storescu) and the real
 * service (`cxr serve`): killed while an instance arrives, and then worse than a kill — the store's
 * last commits are gone too (SQLite's WAL at synchronous=NORMAL may lose them to a power cut). At
 * the next start every instance answered Success is in its study folder, byte for byte, and
 * recorded with the hash of the bytes sent; the partial one is gone (never answered, so the sender
 * sends it again); nothing is quarantined.
 */
describe.runIf(requireSharedData())("spool: kill -9 while instances arrive, then restart", () => {
  const tmp = tempDir("cxr-spool-crash-");
  let node: ServedNode | undefined;
  beforeAll(() => initModelDir({ inputSize: 64, seed: 1, out: join(tmp.dir, "model") }));
  afterAll(() => {
    if (node && node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGKILL");
    tmp.cleanup();
  });

  it("every instance answered Success is recorded again with the bytes sent; the cut-off one is not half-kept", async () => {
    const dataDir = join(tmp.dir, "data");
    const configPath = join(tmp.dir, "crash.json");
    writeFileSync(configPath, JSON.stringify({
      dataDir,
      logLevel: "info",
      model: { dir: join(tmp.dir, "model") },
      dicom: { aeTitle: "CXR_CRASH", port: 0, acceptedSopClasses: [SOP_CLASS.SECONDARY_CAPTURE] },
      // The studies stay "received": this test is about intake alone.
      intake: { stableAgeSeconds: 3600 },
      api: { httpPort: 0, tokens: ["crash-test-token-0123456789"] },
    }));
    const logPath = join(tmp.dir, "serve.log");
    node = await serve(configPath, logPath);
    const inputs = reUidStudies(tmp.dir, STUDIES);
    const answered = await sendAndKill(node.dicomPort, inputs.map((i) => i.path), node, KILL_AFTER);
    await new Promise((r) => (node!.child.exitCode !== null || node!.child.signalCode !== null ? r(undefined) : node!.child.once("exit", r)));
    expect(answered).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(answered).toBeLessThan(STUDIES);

    // Worse than the kill: the store lost its last commits.
    for (const f of ["store.sqlite", "store.sqlite-wal", "store.sqlite-shm"]) rmSync(join(dataDir, f), { force: true });

    node = await serve(configPath, logPath);
    const store = openSqliteStore(join(dataDir, "store.sqlite"));
    try {
      const recorded = new Map<string, InstanceRecord>();
      for (const input of inputs) for (const r of await store.instances(input.studyInstanceUid)) recorded.set(input.studyInstanceUid, r);
      for (const [n, input] of inputs.entries()) {
        const rec = recorded.get(input.studyInstanceUid);
        if (n < answered) expect(rec, `answered Success: ${input.path}`).toBeDefined();
        if (!rec) continue;
        // Whole and as sent — answered or not: never a partial data set.
        const sent = datasetOf(readFileSync(input.path));
        const kept = datasetOf(readFileSync(rec.path));
        expect(kept.equals(sent), input.path).toBe(true);
        expect(rec.sha256).toBe(createHash("sha256").update(sent).digest("hex"));
      }
      // At most the instance whose transfer the kill cut was made durable without its answer going out.
      expect(recorded.size).toBeLessThanOrEqual(answered + 1);
      expect(await store.quarantined()).toEqual([]);
      expect(readdirSync(join(dataDir, "spool", "incoming"))).toEqual([]);
    } finally {
      await store.close();
      node.child.kill("SIGTERM");
      await new Promise((r) => node!.child.once("exit", r));
    }
  }, 180_000);
});
