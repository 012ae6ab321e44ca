import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { StudyRecord } from "../../src/store/index.ts";
import { postgresUnavailable } from "../helpers/postgres.ts";
import { requireSharedData } from "../helpers/shared-data.ts";
import { orthancStudyInstances, serveClusterNode, waitFor, type ServedNode } from "./helpers.ts";
import { clusterFixture, killWhileProcessing } from "./cluster-fixture.ts";
import { reUidStudies } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const SR_CLASSES = ["1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"];
const TOKEN = "three-nodes-token-0123456789";
const NODES = ["node-1", "node-2", "node-3"];
const STUDIES = 60;
const LEASE_SECONDS = 3;
const aeTitleOf = (nodeId: string) => `CXR_${nodeId.replace("-", "_").toUpperCase()}`;
const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`three-node cluster test: ${unavailable}`);

/**
 * Three `cxr serve` processes on one machine (own DICOM and HTTP ports), one PostgreSQL, one shared
 * data folder, Orthanc as the PACS; storescu sends 60 studies spread over the three listeners. Node 3
 * is killed (-9) while it processes a study: every study still ends with exactly its SR, SCs and
 * Parametric Maps in Orthanc, once, and node 1's worklist (REST and WebSocket) shows the whole cluster.
 */
describe.runIf(requireSharedData() && !unavailable)("cluster: three nodes, one killed while it processes", () => {
  const fx = clusterFixture("cxr-three-nodes-");

  it("every study has exactly one SR (and its SCs and maps) in Orthanc; node 1's worklist lists all 60 and its WebSocket pushed the other nodes' studies", async () => {
    const url = await fx.pg.createDatabase();
    const nodes: ServedNode[] = [];
    for (const nodeId of NODES) nodes.push(await serveClusterNode({ dir: fx.tmp.dir, nodeId, aeTitle: aeTitleOf(nodeId), token: TOKEN, storeUrl: url, leaseSeconds: LEASE_SECONDS, orthanc: fx.orthanc }));
    fx.children.push(...nodes.map((n) => n.child));
    const observer = await fx.observe(url, LEASE_SECONDS);

    // Node 1's WebSocket, open before anything is sent: it must hear of every study, wherever it was processed.
    const api = nodes[0]!.httpUrl!;
    const ws = new WebSocket(`${api.replace("http", "ws")}/ws`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    const pushed: { studyInstanceUid: string; state: string; processedBy?: string }[] = [];
    ws.on("message", (data) => pushed.push((JSON.parse(String(data)) as { study: (typeof pushed)[number] }).study));
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));

    const inputs = reUidStudies(fx.tmp.dir, STUDIES);
    const studies = inputs.map((s) => s.studyInstanceUid);
    const cfg = writeStorescuConfig(fx.tmp.dir);
    const sent = await Promise.all(NODES.map((nodeId, n) =>
      storescu({ port: nodes[n]!.dicomPort, aec: aeTitleOf(nodeId), cfg, files: inputs.filter((_, i) => i % NODES.length === n).map((s) => s.path) })));
    for (const r of sent) expect(r.code, r.log.slice(-1000)).toBe(0);

    // Node 3 frozen while it holds a study in processing, then killed.
    const stuck = await killWhileProcessing(fx.children[2]!, "node-3", studies, observer);

    const all = () => Promise.all(studies.map((s) => observer.get(s)));
    await waitFor("every study exported", async () => (await all()).every((r) => r?.state === "exported"), 240_000, 500);
    const records = (await all()).map((r) => r!);

    const taken = records.find((r) => r.studyInstanceUid === stuck.studyInstanceUid)!;
    const trail = taken.history.map((h) => `${h.state}@${h.node}`);
    expect(trail).toContain("processing@node-3");
    expect(["node-1", "node-2"]).toContain(taken.processedBy);
    for (const rec of records) {
      const inPacs = await orthancStudyInstances(fx.orthanc, rec.studyInstanceUid);
      expect(inPacs.filter((i) => SR_CLASSES.includes(i.sopClassUid)).map((i) => i.sopInstanceUid), rec.studyInstanceUid).toEqual([rec.outputs!.sr]);
      // exactly its recorded outputs (SR, SCs, Parametric Maps), each once: Orthanc keys instances by SOP Instance UID
      const expected = [rec.outputs!.sr!, ...(rec.outputs!.sc ?? []), ...(rec.outputs!.pm ?? [])].sort();
      expect(inPacs.map((i) => i.sopInstanceUid).sort(), rec.studyInstanceUid).toEqual(expected);
    }
    const byNode = (n: string) => records.filter((r: StudyRecord) => r.processedBy === n).length;
    expect(byNode("node-1") + byNode("node-2") + byNode("node-3")).toBe(STUDIES);
    expect(byNode("node-2"), "node 2 processed studies too").toBeGreaterThan(0);

    // Node 1's worklist: all 60, each naming the node that processed it …
    const listed = (await (await fetch(`${api}/api/studies`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()) as { studyInstanceUid: string; processedBy?: string; state: string }[];
    expect(listed.map((s) => s.studyInstanceUid).sort()).toEqual([...studies].sort());
    expect(listed.every((s) => s.state === "exported")).toBe(true);
    expect(listed.map((s) => s.processedBy).sort()).toEqual(records.map((r) => r.processedBy).sort());
    // … and its WebSocket pushed every study finished on node 2 or node 3 (LISTEN/NOTIFY), as exported by that node.
    const elsewhere = records.filter((r) => r.processedBy !== "node-1");
    await waitFor("node 1's WebSocket pushed the other nodes' studies exported", () =>
      elsewhere.every((r) => pushed.some((p) => p.studyInstanceUid === r.studyInstanceUid && p.state === "exported" && p.processedBy === r.processedBy)), 15_000);
    ws.close();
  }, 420_000);
});
