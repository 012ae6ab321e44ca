import { copyFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/store/index.ts";
import { SQLITE_MIGRATIONS } from "../../src/store/sqlite/migrations.ts";
import { tempDir } from "../helpers/tmp.ts";

const FIXTURE = join(import.meta.dirname, "..", "fixtures", "store-v0", "store.sqlite");
const S = (n: number) => `1.2.826.0.1.3680043.10.9.${n}`;
const minute = (m: number) => new Date(Date.UTC(2026, 10, 30, 10, m)).toISOString();

/** A copy of the store the previous release wrote (test/fixtures/store-v0/README.md), opened by this one. */
function upgraded() {
  const tmp = tempDir("cxr-upgrade-");
  const path = join(tmp.dir, "store.sqlite");
  copyFileSync(FIXTURE, path);
  return { tmp, path, store: openSqliteStore(path, { nodeId: "upgraded" }) };
}

describe("a data folder written by the previous release opens after the upgrade", () => {
  it("migrates to the newest schema version, once", async () => {
    const { tmp, path, store } = upgraded();
    try {
      await store.close();
      const db = new Database(path, { readonly: true });
      const versions = db.prepare("SELECT version FROM schema_version ORDER BY version").all() as { version: number }[];
      const studyColumns = (db.prepare("PRAGMA table_info(studies)").all() as { name: string }[]).map((c) => c.name);
      db.close();
      expect(versions.map((v) => v.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
      expect(studyColumns).not.toContain("history"); // one representation each: the tables
      expect(studyColumns).not.toContain("outputs");
      const again = openSqliteStore(path);
      expect((await again.list()).length).toBe(7);
      await again.close();
    } finally {
      tmp.cleanup();
    }
  });

  it("reads every study with its state, history, results, current outputs, exports, decisions and the quarantine", async () => {
    const { tmp, store } = upgraded();
    try {
      expect(await store.countsByState()).toEqual({ received: 1, queued: 1, processing: 1, done: 1, exported: 1, failed: 1, rejected: 1 });
      const done = (await store.get(S(3)))!;
      expect(done).toMatchObject({ state: "done", reason: "export failed (attempt 1)", patientName: "Doe^Jane", accessionNumber: "A3", outputs: { sr: "2.25.200", sc: ["2.25.201"] } });
      expect(done.history).toEqual(["received", "queued", "processing", "done", "received", "queued", "processing", "done"].map((state, i) => ({ state, at: minute(3 + i) })));
      expect(done.findings?.[0]).toMatchObject({ label: "Pneumonia", probability: 0.8, positive: true });
      expect(done.model?.deviceUid).toBe("1.2.3.4");
      expect(await store.processedKey(S(3))).toBe("k-new");
      expect(await store.seriesDecisions(S(3))).toEqual([{ seriesInstanceUid: `${S(3)}.1`, eligible: true, reason: "CR CHEST PA" }]);
      // the superseded SR is no longer current but still known as this service's own object
      expect((await store.outputs(S(3))).map((o) => o.sopInstanceUid)).toEqual(["2.25.200", "2.25.201"]);
      expect(await store.ownOutputs(["2.25.100", "2.25.200", "9.9"])).toEqual(new Set(["2.25.100", "2.25.200"]));
      expect((await store.pendingExports(S(3), "ORTHANC@127.0.0.1:4242")).map((o) => o.sopInstanceUid)).toEqual(["2.25.201"]);
      expect((await store.pendingExports(S(3), "http://pacs/dicom-web")).map((o) => o.sopInstanceUid)).toEqual(["2.25.200", "2.25.201"]);
      expect(await store.exportSchedule(S(3))).toEqual({ nextAt: Date.parse(minute(12)), attempts: 1 });
      expect((await store.exports(S(3))).find((e) => e.outputUid === "2.25.201" && e.destination.startsWith("ORTHANC"))).toMatchObject({ sent: false, attempts: 1, lastError: "status 0xa700" });
      expect((await store.get(S(4)))!).toMatchObject({ state: "exported", outputs: { sr: "2.25.400", sc: [] } });
      expect((await store.get(S(5)))!.reason).toBe("decode failed for x: bad JPEG");
      expect((await store.get(S(7)))!.reason).toBe("no eligible series");
      expect((await store.instances(S(1)))[0]).toMatchObject({ sopInstanceUid: "1.2.826.0.1.3680043.10.1.1.1", callingAeTitle: "MODALITY", header: { modality: "CR" } });
      expect((await store.quarantined()).map((q) => [q.reason, q.studyInstanceUid])).toEqual([["decode failed for x: bad JPEG", S(5)], ["unparseable dataset", undefined]]);
      expect((await store.list()).map((r) => r.studyInstanceUid)).toEqual([7, 6, 5, 4, 3, 2, 1].map(S));
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });

  it("goes on where the old process stopped: its 'processing' study (no lease) is queued again, the others move on", async () => {
    const { tmp, store } = upgraded();
    try {
      expect(await store.requeueAbandoned({ ownLeases: true })).toEqual([S(6)]);
      expect(await store.claimNext()).toBe(S(2)); // queued before the interrupted one was re-queued
      expect(await store.claimNext()).toBe(S(6));
      expect(await store.addInstance({
        sopInstanceUid: "1.2.826.0.1.3680043.10.1.4.2", sopClassUid: "1.2.840.10008.5.1.4.1.1.1", studyInstanceUid: S(4), seriesInstanceUid: `${S(4)}.1`,
        transferSyntaxUid: "1.2.840.10008.1.2.1", path: "/spool/new.dcm", sha256: "ff", size: 1, callingAeTitle: "MODALITY", header: {},
      })).toBe("new");
      expect((await store.get(S(4)))!.history.map((h) => h.state)).toEqual(["received", "queued", "processing", "done", "exported", "received"]);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});
