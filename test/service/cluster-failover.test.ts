import { describe, expect, it } from "vitest";
import type { StudyRecord } from "../../src/store/index.ts";
import { postgresUnavailable } from "../helpers/postgres.ts";
import { requireSharedData } from "../helpers/shared-data.ts";
import { orthancStudyInstances, serveClusterNode, waitFor } from "./helpers.ts";
import { clusterFixture, killWhileProcessing } from "./cluster-fixture.ts";
import { reUidStudies } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const SR_CLASSES = ["1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"];
const AET = "CXR_NODE";
const LEASE_SECONDS = 3;
const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`cluster failover test: ${unavailable}`);

/**
 * Two `cxr serve` processes share one PostgreSQL and one data folder. One is frozen while it
 * processes a study and then killed (-9): once its lease lapses the other node finishes that study,
 * and every study has exactly one SR in Orthanc.
 */
describe.runIf(requireSharedData() && !unavailable)("cluster failover: a node killed while it processes", () => {
  const fx = clusterFixture("cxr-failover-");

  it("the surviving node takes over the dead node's study after its lease; every study is exported once", async () => {
    const url = await fx.pg.createDatabase();
    const ports: number[] = [];
    for (const nodeId of ["node-1", "node-2"]) {
      const node = await serveClusterNode({ dir: fx.tmp.dir, nodeId, aeTitle: AET, token: "cluster-test-token-0123456789", storeUrl: url, leaseSeconds: LEASE_SECONDS, orthanc: fx.orthanc });
      ports.push(node.dicomPort);
      fx.children.push(node.child);
    }
    const observer = await fx.observe(url, LEASE_SECONDS);
    const inputs = reUidStudies(fx.tmp.dir, 12);
    const studies = inputs.map((s) => s.studyInstanceUid);
    const sent = await storescu({ port: ports[0]!, aec: AET, cfg: writeStorescuConfig(fx.tmp.dir), files: inputs.map((s) => s.path) });
    expect(sent.code, sent.log.slice(-1000)).toBe(0);

    // Node 1 frozen while it holds a study in processing, then killed.
    const stuck = await killWhileProcessing(fx.children[0]!, "node-1", studies, observer);

    const all = () => Promise.all(studies.map((s) => observer.get(s)));
    await waitFor("every study exported", async () => (await all()).every((r) => r?.state === "exported"), 180_000, 250);
    const records = (await all()).map((r) => r!);
    const taken = records.find((r) => r.studyInstanceUid === stuck.studyInstanceUid)!;
    const trail = taken.history.map((h) => `${h.state}@${h.node}`);
    expect(trail.slice(trail.indexOf("processing@node-1"))).toEqual(["processing@node-1", "queued@node-2", "processing@node-2", "done@node-2", "exported@node-2"]);
    expect(taken.processedBy).toBe("node-2");
    for (const rec of records) {
      const inPacs = await orthancStudyInstances(fx.orthanc, rec.studyInstanceUid);
      expect(inPacs.filter((i) => SR_CLASSES.includes(i.sopClassUid)).map((i) => i.sopInstanceUid), rec.studyInstanceUid).toEqual([rec.outputs!.sr]);
      // its SR, SCs and Parametric Maps, nothing twice
      expect(inPacs.map((i) => i.sopInstanceUid).sort(), rec.studyInstanceUid).toEqual([rec.outputs!.sr!, ...rec.outputs!.sc!, ...(rec.outputs!.pm ?? [])].sort());
    }
    const byNode = (n: string) => records.filter((r: StudyRecord) => r.processedBy === n).length;
    expect(byNode("node-1") + byNode("node-2")).toBe(12);
  }, 300_000);
});
