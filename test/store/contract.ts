import { describe, expect, it } from "vitest";
import { IllegalTransitionError, type NewInstance, type Store, type StudyRecord, type StudyResults } from "../../src/store/index.ts";

/**
 * One suite for every implementation of the store's roles (SQLite, PostgreSQL): the state
 * machine, intake idempotence, claims and leases, results and the export queue, history, counts
 * and onChange. A backend gives a fresh database per test and opens stores (nodes) on it.
 */
export interface Backend {
  /** A fresh, empty database; `open` gives a store (one node) on it. */
  fresh(): Promise<{ open(nodeId: string, leaseSeconds?: number): Promise<Store>; cleanup(): Promise<void> }>;
  /** Whether a change made through one store reaches onChange of another (PostgreSQL LISTEN/NOTIFY). */
  crossNodeChanges: boolean;
}

const ROOT = "1.2.826.0.1.3680043.10.77";
export function instance(study: number, n = 1, over: Partial<NewInstance> = {}): NewInstance {
  const studyUid = `${ROOT}.${study}`;
  return {
    sopInstanceUid: `${studyUid}.1.${n}`, sopClassUid: "1.2.840.10008.5.1.4.1.1.1", studyInstanceUid: studyUid, seriesInstanceUid: `${studyUid}.1`,
    transferSyntaxUid: "1.2.840.10008.1.2.1", path: `/spool/${studyUid}/${n}.dcm`, sha256: `sha-${study}-${n}`, size: 100 + n, callingAeTitle: "MODALITY",
    header: { modality: "DX", bodyPartExamined: "CHEST", viewPosition: "PA" }, patientName: "Doe^Jane", patientId: `P${study}`, ...over,
  };
}
const uid = (study: number) => `${ROOT}.${study}`;

function results(study: number, tag: string, destinations = ["PACS@127.0.0.1:104"]): StudyResults {
  const s = uid(study);
  return {
    processedKey: `key-${tag}`,
    findings: [{ label: "Effusion", code: { value: "60046008", scheme: "SCT", meaning: "Pleural effusion" }, probability: 0.7, threshold: 0.5, positive: true }],
    heatmaps: [{ label: "Effusion", path: `/heatmaps/${s}/Effusion.png` }],
    model: { name: "m", version: "1", deviceUid: "2.25.9", training: "untrained" },
    outputs: [
      { sopInstanceUid: `2.25.${study}${tag === "a" ? 1 : 2}0`, studyInstanceUid: s, kind: "sr", sopClassUid: "1.2.840.10008.5.1.4.1.1.88.34", path: `/out/${tag}.sr.dcm` },
      { sopInstanceUid: `2.25.${study}${tag === "a" ? 1 : 2}1`, studyInstanceUid: s, kind: "sc", sopClassUid: "1.2.840.10008.5.1.4.1.1.7", path: `/out/${tag}.sc-1.dcm` },
    ],
    destinations,
  };
}

const states = async (store: Store, study: number) => (await store.get(uid(study)))!.history.map((h) => h.state);
const at = (minute: number) => new Date(Date.UTC(2026, 11, 1, 8, minute));

async function waitUntil<T>(what: string, probe: () => T | undefined | false, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `skip`: why this backend cannot run here (the suite is then skipped, visibly). */
export function storeContract(name: string, backend: () => Backend, skip?: string): void {
  describe.skipIf(!!skip)(`store contract: ${name}${skip ? ` (skipped: ${skip})` : ""}`, () => {
    /** A fresh database with one node "node-a" (more via `open`). */
    async function setup(leaseSeconds = 60) {
      const b = backend();
      const db = await b.fresh();
      const stores: Store[] = [];
      const open = async (nodeId: string, lease = leaseSeconds) => {
        const s = await db.open(nodeId, lease);
        stores.push(s);
        return s;
      };
      const store = await open("node-a");
      return {
        store, open, crossNode: b.crossNodeChanges,
        async [Symbol.asyncDispose]() {
          for (const s of stores) await s.close();
          await db.cleanup();
        },
      };
    }
    /** Received → queued → processing (claimed by `store`). */
    async function claimed(store: Store, study: number) {
      await store.addInstance(instance(study));
      expect(await store.transition(uid(study), "queued", { from: ["received"] })).toBe(true);
      expect(await store.claimNext()).toBe(uid(study));
    }

    it("intake: a new instance creates its study; the same bytes again change nothing; new bytes replace", async () => {
      await using t = await setup();
      const { store } = t;
      expect(await store.addInstance(instance(1), at(0))).toBe("new");
      expect(await store.addInstance(instance(1), at(1))).toBe("duplicate");
      expect(await store.instanceCount(uid(1))).toBe(1);
      expect(await store.addInstance(instance(1, 1, { sha256: "changed", size: 7 }), at(2))).toBe("replaced");
      expect(await store.addInstance(instance(1, 2), at(3))).toBe("new");
      const list = await store.instances(uid(1));
      expect(list.map((i) => [i.sopInstanceUid, i.sha256, i.size])).toEqual([[`${uid(1)}.1.1`, "changed", 7], [`${uid(1)}.1.2`, "sha-1-2", 102]]);
      expect(list[0]!.header).toEqual({ modality: "DX", bodyPartExamined: "CHEST", viewPosition: "PA" });
      const rec = (await store.get(uid(1)))!;
      expect(rec).toMatchObject({ state: "received", patientName: "Doe^Jane", patientId: "P1", receivedAt: at(0).toISOString(), updatedAt: at(3).toISOString() });
      expect(rec.history).toEqual([{ state: "received", at: at(0).toISOString(), node: "node-a" }]);
      expect(await store.hasInstanceAt(`/spool/${uid(1)}/2.dcm`)).toBe(true);
      expect(await store.hasInstanceAt("/spool/elsewhere.dcm")).toBe(false);
      expect(await store.stableStudies(at(2).getTime())).toEqual([]);
      expect(await store.stableStudies(at(3).getTime())).toEqual([uid(1)]);
    });

    it("state machine: allowed moves only; compare-and-set on `from`; illegal requests throw", async () => {
      await using t = await setup();
      const { store } = t;
      await store.addInstance(instance(1));
      await expect(store.transition(uid(1), "exported", { from: ["queued"] })).rejects.toBeInstanceOf(IllegalTransitionError);
      await expect(store.transition(uid(1), "done")).rejects.toThrow(/received → done is not an allowed state change/);
      expect(await store.transition(uid(1), "processing", { from: ["queued"] })).toBe(false); // not queued: nothing happens
      expect(await store.transition(uid(1), "queued", { from: ["received"] })).toBe(true);
      expect(await store.transition(uid(1), "queued", { from: ["received"] })).toBe(false); // a second assembler lost the race
      expect(await store.transition("2.25.404", "queued", { from: ["received"] })).toBe(false);
      expect(await states(store, 1)).toEqual(["received", "queued"]);
    });

    it("a new instance re-opens a finished study, not one being processed", async () => {
      await using t = await setup();
      const { store } = t;
      await claimed(store, 1);
      await store.addInstance(instance(1, 2));
      expect((await store.get(uid(1)))!.state).toBe("processing");
      expect(await store.recordResults(uid(1), results(1, "a"))).toBe(true);
      expect(await store.markStudyExported(uid(1))).toBe(true);
      await store.addInstance(instance(1, 3));
      expect(await states(store, 1)).toEqual(["received", "queued", "processing", "done", "exported", "received"]);
      expect((await store.get(uid(1)))!.reason).toBeUndefined();
    });

    it("claims: the oldest queued study first, under this node's name; none left → undefined", async () => {
      await using t = await setup();
      const { store } = t;
      for (const s of [1, 2, 3]) await store.addInstance(instance(s));
      await store.transition(uid(2), "queued", { now: at(1) });
      await store.transition(uid(1), "queued", { now: at(2) });
      expect(await store.claimNext()).toBe(uid(2));
      expect(await store.claimNext()).toBe(uid(1));
      expect(await store.claimNext()).toBeUndefined();
      expect((await store.get(uid(2)))!.processedBy).toBe("node-a");
      expect(await store.countInState("processing")).toBe(2);
      expect(await store.countsByState()).toEqual({ received: 1, queued: 0, processing: 2, done: 0, exported: 0, failed: 0, rejected: 0 });
    });

    it("results: stored once, current outputs replace earlier ones, exports per destination, then exported", async () => {
      await using t = await setup();
      const { store } = t;
      await claimed(store, 1);
      const dests = ["PACS@127.0.0.1:104", "http://pacs/dicom-web"];
      expect(await store.recordResults(uid(1), results(1, "a", dests))).toBe(true);
      expect(await store.recordResults(uid(1), results(1, "a", dests))).toBe(false); // no longer processing
      let rec = (await store.get(uid(1)))!;
      expect(rec).toMatchObject({ state: "done", outputs: { sr: "2.25.110", sc: ["2.25.111"] }, model: { deviceUid: "2.25.9" } });
      expect(rec.findings![0]!.label).toBe("Effusion");
      expect(await store.processedKey(uid(1))).toBe("key-a");
      expect(await store.studiesToExport()).toEqual([uid(1)]);
      expect((await store.pendingExports(uid(1), dests[0]!)).map((o) => o.sopInstanceUid)).toEqual(["2.25.110", "2.25.111"]);
      await store.markExported("2.25.110", dests[0]!, at(5));
      await store.markExportFailed("2.25.111", dests[0]!, "status 0xa700");
      expect((await store.pendingExports(uid(1), dests[0]!)).map((o) => o.sopInstanceUid)).toEqual(["2.25.111"]);
      const byDestinationAndUid = (x: { destination: string; outputUid: string }, y: { destination: string; outputUid: string }) =>
        x.destination < y.destination ? -1 : x.destination > y.destination ? 1 : x.outputUid < y.outputUid ? -1 : 1;
      expect((await store.exports(uid(1))).sort(byDestinationAndUid)).toEqual([
        { outputUid: "2.25.110", destination: dests[0], sent: true, attempts: 1, sentAt: at(5).toISOString(), lastError: undefined },
        { outputUid: "2.25.111", destination: dests[0], sent: false, attempts: 1, lastError: "status 0xa700", sentAt: undefined },
        { outputUid: "2.25.110", destination: dests[1], sent: false, attempts: 0, lastError: undefined, sentAt: undefined },
        { outputUid: "2.25.111", destination: dests[1], sent: false, attempts: 0, lastError: undefined, sentAt: undefined },
      ].sort(byDestinationAndUid));
      await store.setExportSchedule(uid(1), at(9).getTime(), 1, "export failed (attempt 1)");
      expect(await store.exportSchedule(uid(1))).toEqual({ nextAt: at(9).getTime(), attempts: 1 });
      expect((await store.get(uid(1)))!.reason).toBe("export failed (attempt 1)");
      // processed again with new inputs: new outputs are current, the old ones are still known as ours
      await store.addInstance(instance(1, 1, { sha256: "new" }));
      await store.transition(uid(1), "queued", { from: ["received"] });
      await store.claimNext();
      await store.recordResults(uid(1), { ...results(1, "b", dests), supersedes: "2.25.110" });
      rec = (await store.get(uid(1)))!;
      expect(rec.outputs).toEqual({ sr: "2.25.120", sc: ["2.25.121"], supersedes: "2.25.110" });
      expect(await store.exportSchedule(uid(1))).toEqual({ nextAt: 0, attempts: 0 });
      expect((await store.outputs(uid(1))).map((o) => o.sopInstanceUid)).toEqual(["2.25.120", "2.25.121"]);
      expect((await store.pendingExports(uid(1), dests[0]!)).map((o) => o.sopInstanceUid)).toEqual(["2.25.120", "2.25.121"]);
      expect(await store.ownOutputs(["2.25.110", "2.25.121", `${uid(1)}.1.1`])).toEqual(new Set(["2.25.110", "2.25.121"]));
      for (const d of dests) for (const o of await store.pendingExports(uid(1), d)) await store.markExported(o.sopInstanceUid, d);
      expect(await store.markStudyExported(uid(1))).toBe(true);
      expect(await store.studiesToExport()).toEqual([]);
    });

    it("history: every change once, in order, with the node that made it; series decisions replaced as a whole", async () => {
      await using t = await setup();
      const { store } = t;
      await store.addInstance(instance(1), at(0));
      await store.transition(uid(1), "rejected", { from: ["received"], reason: "no eligible series", now: at(1) });
      await store.setSeriesDecisions(uid(1), [{ seriesInstanceUid: "1.2.2", eligible: false, reason: "CT" }, { seriesInstanceUid: "1.2.1", eligible: false, reason: "lateral" }]);
      await store.setSeriesDecisions(uid(1), [{ seriesInstanceUid: "1.2.1", eligible: true, reason: "PA" }]);
      expect(await store.seriesDecisions(uid(1))).toEqual([{ seriesInstanceUid: "1.2.1", eligible: true, reason: "PA" }]);
      expect((await store.get(uid(1)))!).toMatchObject({
        state: "rejected", reason: "no eligible series",
        history: [{ state: "received", at: at(0).toISOString(), node: "node-a" }, { state: "rejected", at: at(1).toISOString(), node: "node-a" }],
      });
      const list = await store.list();
      expect(list.map((r) => r.studyInstanceUid)).toEqual([uid(1)]);
      expect(list[0]).toEqual(await store.get(uid(1)));
    });

    it("quarantine: entries with and without a study, listed in order", async () => {
      await using t = await setup();
      const { store } = t;
      await store.addQuarantine("/q/a.dcm", "unparseable", undefined, at(0));
      await store.addQuarantine("/q/b.dcm", "decode failed", uid(1), at(1));
      expect(await store.quarantined()).toEqual([
        { path: "/q/a.dcm", reason: "unparseable", studyInstanceUid: undefined, at: at(0).toISOString() },
        { path: "/q/b.dcm", reason: "decode failed", studyInstanceUid: uid(1), at: at(1).toISOString() },
      ]);
      expect(await store.isQuarantined("/q/b.dcm")).toBe(true);
      expect(await store.isQuarantined("/q/c.dcm")).toBe(false);
    });

    it("onChange: the current record after each change of a study; not for an identical copy; unsubscribes", async () => {
      await using t = await setup();
      const { store } = t;
      const seen: StudyRecord[] = [];
      const off = store.onChange((r) => seen.push(r));
      await store.addInstance(instance(1));
      await waitUntil("the new study", () => seen.length === 1);
      await store.addInstance(instance(1));
      await store.transition(uid(1), "queued", { from: ["received"] });
      await waitUntil("the queued study", () => seen.some((r) => r.state === "queued"));
      await store.claimNext();
      await store.recordResults(uid(1), results(1, "a"));
      const done = await waitUntil("the results", () => seen.find((r) => r.state === "done"));
      expect(done.outputs?.sr).toBe("2.25.110");
      await new Promise((r) => setTimeout(r, 100));
      expect(seen.filter((r) => r.state === "received")).toHaveLength(1); // the duplicate said nothing
      off();
      const count = seen.length;
      await store.setExportSchedule(uid(1), 1, 1, "x");
      await new Promise((r) => setTimeout(r, 100));
      expect(seen).toHaveLength(count);
    });

    it("leases: two nodes claiming at once never get the same study, and every study is claimed", async () => {
      await using t = await setup();
      const { store: a } = t;
      const b = await t.open("node-b");
      for (let s = 1; s <= 30; s++) {
        await a.addInstance(instance(s));
        await a.transition(uid(s), "queued", { from: ["received"] });
      }
      const claimAll = async (store: Store) => {
        const got: string[] = [];
        for (;;) {
          const next = await store.claimNext();
          if (!next) return got;
          got.push(next);
        }
      };
      const [byA, byB, byA2, byB2] = await Promise.all([claimAll(a), claimAll(b), claimAll(a), claimAll(b)]);
      const all = [...byA, ...byB, ...byA2, ...byB2];
      expect(new Set(all).size).toBe(all.length);
      expect(all).toHaveLength(30);
      for (const s of byB) expect((await a.get(s))!.processedBy).toBe("node-b");
    });

    it("leases: a study whose node stops renewing is taken over after the lease; the old node can no longer finish it", async () => {
      await using t = await setup(1);
      const { store: a } = t;
      const b = await t.open("node-b", 1);
      await claimed(a, 1);
      const now = new Date();
      expect(await b.requeueAbandoned({ now })).toEqual([]); // a's lease is live
      expect(await a.renewLease(uid(1), now)).toBe(true);
      const later = new Date(now.getTime() + 1500);
      expect(await a.requeueAbandoned({ now: later })).toEqual([]); // a never takes its own live work from itself
      expect(await b.requeueAbandoned({ now: later })).toEqual([uid(1)]);
      expect(await b.claimNext(later)).toBe(uid(1));
      expect(await a.renewLease(uid(1))).toBe(false);
      expect(await a.recordResults(uid(1), results(1, "a"))).toBe(false);
      expect(await a.transition(uid(1), "failed", { from: ["processing"], reason: "late" })).toBe(false);
      expect(await b.recordResults(uid(1), results(1, "a"))).toBe(true);
      const rec = (await a.get(uid(1)))!;
      expect(rec.processedBy).toBe("node-b");
      expect(rec.history.map((h) => `${h.state}@${h.node}`)).toEqual(["received@node-a", "queued@node-a", "processing@node-a", "queued@node-b", "processing@node-b", "done@node-b"]);
    });

    it("export claims: one node sends a study at a time; released or lapsed, another may", async () => {
      await using t = await setup(1);
      const { store: a } = t;
      const b = await t.open("node-b", 1);
      await claimed(a, 1);
      expect(await a.claimExport(uid(1))).toBe(false); // not done yet
      await a.recordResults(uid(1), results(1, "a"));
      const now = new Date();
      expect(await a.claimExport(uid(1), now)).toBe(true);
      expect(await b.claimExport(uid(1), now)).toBe(false);
      await a.releaseExport(uid(1));
      expect(await b.claimExport(uid(1), now)).toBe(true);
      expect(await a.claimExport(uid(1), new Date(now.getTime() + 500))).toBe(false);
      expect(await a.claimExport(uid(1), new Date(now.getTime() + 1500))).toBe(true); // b's claim lapsed
    });

    it("restart: a node takes back its own 'processing' studies at start, not those another node holds", async () => {
      await using t = await setup();
      const { store: a } = t;
      const b = await t.open("node-b");
      await claimed(a, 1);
      await b.addInstance(instance(2));
      await b.transition(uid(2), "queued");
      expect(await b.claimNext()).toBe(uid(2));
      const restarted = await t.open("node-a");
      expect(await restarted.requeueAbandoned({ ownLeases: true })).toEqual([uid(1)]);
      expect((await restarted.get(uid(2)))!.state).toBe("processing");
    });

    it("outbox: notifications recorded with the results, claimed once, retried, delivered only on an acknowledgement; replaced by newer results", async () => {
      await using t = await setup();
      const { store } = t;
      await claimed(store, 1);
      const notifications = [{ destination: "hl7:RIS", required: true }, { destination: "webhook:pager", required: false }];
      expect(await store.recordResults(uid(1), { ...results(1, "a"), notifications }, at(5))).toBe(true);
      const listed = await store.notifications(uid(1));
      expect(listed.map((n) => [n.destination, n.state, n.required, n.resultsKey, n.attempts])).toEqual([["hl7:RIS", "pending", true, "key-a", 0], ["webhook:pager", "pending", false, "key-a", 0]]);
      expect(listed[0]!.lastInstanceAt).toBeGreaterThan(0);
      expect(await store.undeliveredRequiredNotifications(uid(1))).toBe(1);
      // Claimed: no second claim until the claim runs out.
      const now = Date.now();
      expect((await store.claimDueNotifications(now, 30_000)).map((n) => n.destination)).toEqual(["hl7:RIS", "webhook:pager"]);
      expect(await store.claimDueNotifications(now + 1, 30_000)).toEqual([]);
      expect(await store.nextNotificationAt()).toBe(now + 30_000);
      await store.markNotificationAttemptFailed(uid(1), "hl7:RIS", "key-a", "AE: unknown patient", now + 2000);
      await store.markNotificationAttemptFailed(uid(1), "webhook:pager", "key-a", "HTTP 500", undefined);
      let byDest = new Map((await store.notifications(uid(1))).map((n) => [n.destination, n]));
      expect(byDest.get("hl7:RIS")).toMatchObject({ state: "pending", attempts: 1, lastError: "AE: unknown patient", nextAt: now + 2000 });
      expect(byDest.get("webhook:pager")).toMatchObject({ state: "failed", attempts: 1, lastError: "HTTP 500" });
      expect(await store.claimDueNotifications(now + 1999, 30_000)).toEqual([]);
      expect((await store.claimDueNotifications(now + 2000, 30_000)).map((n) => n.destination)).toEqual(["hl7:RIS"]);
      expect(await store.markNotificationDelivered(uid(1), "hl7:RIS", "key-other", "AA")).toBe(false); // about other results
      expect(await store.markNotificationDelivered(uid(1), "hl7:RIS", "key-a", "AA: accepted", at(9))).toBe(true);
      expect(await store.markNotificationDelivered(uid(1), "hl7:RIS", "key-a", "AA: accepted", at(9))).toBe(false); // once
      byDest = new Map(((await store.get(uid(1)))!.notifications ?? []).map((n) => [n.destination, n]));
      expect(byDest.get("hl7:RIS")).toMatchObject({ state: "delivered", attempts: 2, ack: "AA: accepted", deliveredAt: at(9).toISOString() });
      expect(byDest.get("hl7:RIS")!.lastError).toBeUndefined();
      expect(await store.undeliveredRequiredNotifications(uid(1))).toBe(0); // the optional one failed: not blocking
      expect(await store.notificationCounts()).toEqual([{ destination: "hl7:RIS", state: "delivered", count: 1 }, { destination: "webhook:pager", state: "failed", count: 1 }]);
      expect((await store.list()).find((r) => r.studyInstanceUid === uid(1))!.notifications).toHaveLength(2);
      // New results of the study: its notifications start again, about the new results.
      await store.addInstance(instance(1, 2));
      await store.transition(uid(1), "queued", { from: ["received"] });
      expect(await store.claimNext()).toBe(uid(1));
      expect(await store.recordResults(uid(1), { ...results(1, "b"), notifications: [notifications[0]!] })).toBe(true);
      expect((await store.notifications(uid(1))).map((n) => [n.destination, n.state, n.resultsKey, n.attempts])).toEqual([["hl7:RIS", "pending", "key-b", 0]]);
      expect(await store.nextNotificationAt()).toBe(0);
    });

    it("outbox: two nodes claiming at once never get the same notification", async () => {
      await using t = await setup();
      const b = await t.open("node-b");
      for (const s of [1, 2, 3, 4, 5, 6]) {
        await claimed(t.store, s);
        await t.store.recordResults(uid(s), { ...results(s, "a"), notifications: [{ destination: "fhir:x", required: true }] });
      }
      const now = Date.now();
      const [x, y] = await Promise.all([t.store.claimDueNotifications(now, 60_000, 3), b.claimDueNotifications(now, 60_000, 3)]);
      const all = [...x, ...y].map((n) => n.studyInstanceUid);
      expect(new Set(all).size).toBe(all.length);
      expect(all.length).toBeGreaterThan(0);
    });

    it("onChange on every node: a change made by one node reaches the other's listeners", async () => {
      await using t = await setup();
      if (!t.crossNode) return; // SQLite: one process per data folder; nothing to reach
      const b = await t.open("node-b");
      const seen: StudyRecord[] = [];
      b.onChange((r) => seen.push(r));
      await t.store.addInstance(instance(1));
      const rec = await waitUntil("node a's study at node b", () => seen.find((r) => r.studyInstanceUid === uid(1)));
      expect(rec.history[0]!.node).toBe("node-a");
    });
  });
}
