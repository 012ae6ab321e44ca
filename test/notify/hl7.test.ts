import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findingCode } from "../../src/model/labels.ts";
import { Registry } from "prom-client";
import { createNotifyMetrics } from "../../src/notify/metrics.ts";
import { PRIORITIZATION_STATEMENT } from "../../src/notify/report.ts";
import { toApiStudy } from "../../src/worklist/server.ts";
import { freePort } from "../../src/peers/ports.ts";
import { openSqliteStore, type Store } from "../../src/store/index.ts";
import { tempDir } from "../helpers/tmp.ts";
import { hl7BirthDate, hl7Sex } from "../../src/notify/hl7.ts";
import { ACCESSION, config, notifier, PATIENT, STUDY, studyWithResults, waitFor } from "./fixture.ts";
import { hl7PeerUnavailable, seg, startHl7Peer, type Hl7Peer } from "./peers.ts";

// The receiver is python-hl7 (Debian python3-hl7): an HL7 implementation this project did not write.
const unavailable = hl7PeerUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`HL7 notification tests: ${unavailable}`);
if (unavailable) console.warn(`skipping the HL7 notification tests: ${unavailable}`);

describe.skipIf(!!unavailable)("HL7 v2.5.1 ORU^R01 over MLLP to a python-hl7 receiver", () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: Store;
  let peer: Hl7Peer | undefined;
  let port: number;
  beforeEach(async () => {
    tmp = tempDir("cxr-hl7-");
    store = openSqliteStore(join(tmp.dir, "store.sqlite"), { nodeId: "n1" });
    port = await freePort();
  });
  afterEach(async () => {
    await peer?.stop();
    peer = undefined;
    await store.close();
    tmp.cleanup();
  });

  const hl7 = (over: Record<string, unknown> = {}, notify: Record<string, unknown> = {}) =>
    config({
      retryInitialSeconds: 0.2, retryMaxSeconds: 1, timeoutSeconds: 3, ...notify,
      destinations: [{ kind: "hl7", name: "ris", host: "127.0.0.1", port, sendingApplication: "CXR", sendingFacility: "RAD", receivingApplication: "RIS", receivingFacility: "HOSP", ...over }],
    });
  const outbox = async () => (await store.notifications(STUDY))[0]!;

  it("the receiver's parser reads every segment back: identifiers, non-ASCII name (MSH-18), STAT priority, one coded OBX per finding, the study UID and the statement", async () => {
    const cfg = hl7();
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl") });
    await studyWithResults(store, cfg);
    const n = notifier(store, cfg);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    const [m, ...more] = peer.messages();
    expect(more).toEqual([]);
    expect(m!.messageType).toBe("ORU^R01^ORU_R01");
    const msh = seg(m!, "MSH");
    expect(msh.slice(2, 6)).toEqual(["CXR", "RAD", "RIS", "HOSP"]);
    expect(msh[10]).toBe("P");
    expect(msh[11]).toBe("2.5.1");
    expect(m!.charset).toBe("UNICODE UTF-8");
    // PID-3 (ID, with its | escaped and restored) and PID-5 (DICOM PN → XPN, UTF-8 intact).
    expect(seg(m!, "PID")[2]).toBe(`${PATIENT.id}^^^^PI`);
    expect(m!.patientFamily).toBe("Müller-Łukasz");
    expect(m!.patientGiven).toBe("Jörg Ñandú");
    expect(seg(m!, "PID")[4]).toBe("Müller-Łukasz^Jörg Ñandú^^^Dr.");
    // PID-7/8 from the patient module: birth date (DA → DTM) and sex (M/F/O, else U).
    expect(seg(m!, "PID").slice(6, 8)).toEqual([PATIENT.birthDate, PATIENT.sex]);
    // ORC/OBR: accession as placer and filler number (its & escaped in transit), result status, STAT.
    expect(seg(m!, "ORC").slice(0, 3)).toEqual(["RE", ACCESSION, ACCESSION]);
    const obr = seg(m!, "OBR");
    expect(obr.slice(1, 4)).toEqual([ACCESSION, ACCESSION, "36643-5^XR Chest 2 Views^LN"]);
    expect(obr[24]).toBe("P");
    expect(obr[26]).toBe("^^^^^S");
    expect(seg(m!, "TQ1")[8]).toBe("S^Stat^HL70485");
    expect(seg(m!, "NTE")[2]).toContain(PRIORITIZATION_STATEMENT);
    expect(seg(m!, "NTE")[2]).toContain("Pneumothorax 0.91 ≥ 0.42");
    // One NM OBX per finding with the SR's codes; the operating-point flag in OBX-8.
    const findings = m!.obx.filter((o) => o.type === "NM");
    expect(findings).toHaveLength(14);
    const ptx = findingCode("Pneumothorax");
    expect(findings.find((o) => o.code === ptx.value)).toEqual({ code: ptx.value, system: ptx.scheme, meaning: ptx.meaning, type: "NM", value: "0.9100", flag: "A" });
    expect(findings.filter((o) => o.flag === "A")).toHaveLength(1);
    expect(new Set(findings.map((o) => o.code)).size).toBe(14);
    const uidObx = m!.obx.find((o) => o.type === "ST")!;
    expect(uidObx).toMatchObject({ code: "110180", system: "DCM", value: STUDY });
    expect((await outbox()).ack).toBe("AA");
  });

  it("a study without patient name, ID or accession number: empty PID-3/5, ORC-2/3, and still delivered", async () => {
    const cfg = hl7();
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl") });
    await studyWithResults(store, cfg, { anonymous: true });
    const n = notifier(store, cfg);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    const [m] = peer.messages();
    expect(m!.patientFamily).toBe("");
    expect(seg(m!, "ORC").slice(0, 3)).toEqual(["RE", "", ""]);
    expect(m!.obx.filter((o) => o.type === "NM")).toHaveLength(14);
  });

  it("MLLP over TLS: delivered to a TLS receiver whose certificate the configured CA signs; refused (and retried) without that CA", async () => {
    const cert = join(tmp.dir, "peer.pem");
    const key = join(tmp.dir, "peer.key");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=ris.test", "-addext", "subjectAltName=DNS:ris.test"], { stdio: "ignore" });
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl"), tls: { cert, key } });
    const untrusted = hl7({ tls: { servername: "ris.test" } }, { retryInitialSeconds: 30 });
    await studyWithResults(store, untrusted);
    let n = notifier(store, untrusted);
    n.start();
    await waitFor("a failed attempt", async () => (await outbox()).attempts === 1);
    await n.stop();
    expect(await outbox()).toMatchObject({ state: "pending", lastError: expect.stringMatching(/self.signed|certificate/i) });
    expect(peer.messages()).toEqual([]);
    const trusted = hl7({ tls: { ca: cert, servername: "ris.test" } });
    await studyWithResults(store, trusted, { key: "key-2", sop: 2 });
    n = notifier(store, trusted);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    expect(peer.messages()).toHaveLength(1);
    expect(peer.messages()[0]!.patientFamily).toBe("Müller-Łukasz");
  });

  it("AE then AA: retried, delivered once, the error kept until then; the study's exported gate opens only then", async () => {
    const cfg = hl7();
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl"), answers: ["AE", "AA"] });
    await studyWithResults(store, cfg);
    expect(await store.undeliveredRequiredNotifications(STUDY)).toBe(1);
    const delivered: string[] = [];
    const n = notifier(store, cfg, (uid) => delivered.push(uid));
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    expect(peer.messages().map((m) => m.answer)).toEqual(["AE", "AA"]);
    expect(new Set(peer.messages().map((m) => m.controlId)).size).toBe(2); // a retry is a new message
    expect(await outbox()).toMatchObject({ state: "delivered", attempts: 2, ack: "AA" });
    expect(delivered).toEqual([STUDY]);
    expect(await store.undeliveredRequiredNotifications(STUDY)).toBe(0);
  });

  it("AE with onApplicationError: fail — given up after one attempt, the reason kept and visible on the study", async () => {
    const cfg = hl7({ onApplicationError: "fail" });
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl"), answers: ["AE"] });
    await studyWithResults(store, cfg);
    const n = notifier(store, cfg);
    n.start();
    await waitFor("failure", async () => (await outbox()).state === "failed");
    await new Promise((r) => setTimeout(r, 500));
    await n.stop();
    expect(peer.messages()).toHaveLength(1);
    const rec = (await store.get(STUDY))!;
    expect(rec.notifications![0]).toMatchObject({ state: "failed", attempts: 1, lastError: expect.stringMatching(/^application error AE/) });
    expect(await store.undeliveredRequiredNotifications(STUDY)).toBe(1);
  });

  it("AR is failed by default and retried when configured", async () => {
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl"), answers: ["AR", "AR", "AA"] });
    const failing = hl7();
    await studyWithResults(store, failing);
    let n = notifier(store, failing);
    n.start();
    await waitFor("failure", async () => (await outbox()).state === "failed");
    await n.stop();
    expect((await outbox()).lastError).toMatch(/^rejected AR/);
    // Same receiver, AR configured as retryable, new results of the study.
    const retrying = hl7({ onApplicationReject: "retry" });
    await studyWithResults(store, retrying, { key: "key-2", sop: 2 });
    n = notifier(store, retrying);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    expect(peer.messages().map((m) => m.answer)).toEqual(["AR", "AR", "AA"]);
    expect(await outbox()).toMatchObject({ attempts: 2, resultsKey: "key-2" });
  });

  it("a commit acknowledgement (CA) is not delivery: the application AA that follows is", async () => {
    const cfg = hl7();
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl"), answers: ["CA+AA"] });
    await studyWithResults(store, cfg);
    const n = notifier(store, cfg);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    expect(await outbox()).toMatchObject({ attempts: 1, ack: "AA" });
  });

  it("a receiver that answers only CA: pending (timed out) in application mode; delivered in commit mode", async () => {
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl"), answers: ["CA"] });
    const app = hl7({}, { timeoutSeconds: 0.5, retryInitialSeconds: 30 });
    await studyWithResults(store, app);
    let n = notifier(store, app);
    n.start();
    await waitFor("a failed attempt", async () => (await outbox()).attempts === 1);
    await n.stop();
    expect(await outbox()).toMatchObject({ state: "pending", lastError: expect.stringMatching(/no acknowledgement/) });
    const commit = hl7({ acknowledgement: "commit" });
    await studyWithResults(store, commit, { key: "key-2", sop: 2 });
    n = notifier(store, commit);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    expect(await outbox()).toMatchObject({ attempts: 1, ack: "CA" });
  });

  it("a receiver that is down: pending with the reason, retried with backoff, delivered once when it comes up — never early, never twice", async () => {
    const cfg = hl7({}, { retryInitialSeconds: 0.2, retryMaxSeconds: 0.8 });
    await studyWithResults(store, cfg);
    const n = notifier(store, cfg);
    n.start();
    await waitFor("three failed attempts", async () => (await outbox()).attempts >= 3);
    expect(await outbox()).toMatchObject({ state: "pending", lastError: expect.stringMatching(/ECONNREFUSED/) });
    expect(await store.undeliveredRequiredNotifications(STUDY)).toBe(1);
    // Visible while failing: on the worklist API's study and in /metrics.
    const api = toApiStudy((await store.get(STUDY))!, cfg.priority);
    expect(api.notifications).toEqual([expect.objectContaining({ destination: "ris", state: "pending", required: true, lastError: expect.stringMatching(/ECONNREFUSED/) })]);
    const registry = new Registry();
    createNotifyMetrics(registry, store);
    expect(await registry.metrics()).toMatch(/cxr_notifications\{destination="ris",state="pending"\} 1/);
    peer = await startHl7Peer({ port, record: join(tmp.dir, "rx.jsonl") });
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await new Promise((r) => setTimeout(r, 1500)); // any stray second send would arrive by now
    await n.stop();
    expect(peer.messages()).toHaveLength(1);
    expect((await outbox()).lastError).toBeUndefined();
  });
});

describe("PID-7/8 from DICOM values", () => {
  it("a real DA passes, anything else is left empty; M/F/O pass, anything else is U", () => {
    expect(["19470312", "19470231", "1947", "", undefined].map(hl7BirthDate)).toEqual(["19470312", "", "", "", ""]);
    expect(["M", "F", "O", "X", "", undefined].map(hl7Sex)).toEqual(["M", "F", "O", "U", "U", "U"]);
  });
});
