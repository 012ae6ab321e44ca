import { execFileSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readDicom } from "../../src/dicom/read.ts";
import { freePort } from "../../src/peers/ports.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { serviceFixture } from "../service/service-fixture.ts";
import { writeStorescuConfig, storescu } from "../service/peers.ts";
import { startFhirServer } from "./fhir-server.ts";
import { waitFor } from "./fixture.ts";
import { hl7PeerUnavailable, seg, startHl7Peer, type Hl7Peer } from "./peers.ts";

const AET = "CXR_NOTIFY";
const unavailable = hl7PeerUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`notification end-to-end test: ${unavailable}`);

/**
 * A real chest film (ISO_IR 192 patient name) sent with storescu through the whole service: the
 * python-hl7 receiver and the FHIR server get the results, the worklist record shows the outbox,
 * /metrics the time to notification, and the study is "exported" only after both acknowledged.
 */
describe.runIf(requireSharedData() && !unavailable)("notifications end to end: storescu → cxr → Orthanc + HL7 (python-hl7) + FHIR", () => {
  let peer: Hl7Peer;
  let fhir: Awaited<ReturnType<typeof startFhirServer>>;
  const fx = serviceFixture({
    tmpPrefix: "cxr-notify-e2e-",
    aeTitle: AET,
    configure: async ({ tmp }) => {
      peer = await startHl7Peer({ port: await freePort(), record: join(tmp.dir, "hl7.jsonl"), answers: ["AE", "AA"] });
      fhir = await startFhirServer();
      return {
        intake: { singleImageImmediately: true },
        notify: {
          retryInitialSeconds: 0.3,
          destinations: [
            { kind: "hl7", name: "ris", host: "127.0.0.1", port: peer.port, receivingApplication: "RIS" },
            { kind: "fhir", name: "fhir", url: fhir.url },
          ],
        },
      };
    },
    stop: async () => {
      await peer?.stop();
      await fhir?.close();
    },
  });
  const { tmp } = fx;

  it("the ORU and the Bundle carry the study's identifiers, UTF-8 name and the SR's findings; exported only after both acknowledged", async () => {
    const file = join(tmp.dir, "chest.dcm");
    copyFileSync(join(SHARED_DICOM, "test1.dcm"), file);
    execFileSync("dcmodify", ["-nb", "-gst", "-gse", "-gin", "-i", "(0008,0005)=ISO_IR 192", "-i", "(0010,0010)=Gößmann^Zoë", "-i", "(0008,0050)=ACC-E2E-16", "-i", "(0010,0020)=MRN-16", file]);
    const study = String(readDicom(file, { withPixelData: false }).dataset.StudyInstanceUID);
    const sent = await storescu({ port: fx.port, aec: AET, cfg: writeStorescuConfig(tmp.dir), files: [file] });
    expect(sent.code, sent.log).toBe(0);
    const rec = await waitFor("exported", async () => {
      const r = await fx.service.store.get(study);
      if (r?.state === "failed" || r?.state === "rejected") throw new Error(`${r.state}: ${r.reason}`);
      return r?.state === "exported" && r;
    }, 90_000);
    // Exported only once both had acknowledged: the first HL7 attempt got AE.
    const notes = new Map(rec.notifications!.map((n) => [n.destination, n]));
    expect(notes.get("ris")).toMatchObject({ state: "delivered", attempts: 2, ack: "AA" });
    expect(notes.get("fhir")).toMatchObject({ state: "delivered", attempts: 1 });
    const exportedAt = Date.parse(rec.history.at(-1)!.at);
    for (const n of notes.values()) expect(Date.parse(n.deliveredAt!)).toBeLessThanOrEqual(exportedAt);

    const messages = peer.messages();
    expect(messages.map((m) => m.answer)).toEqual(["AE", "AA"]);
    const m = messages[1]!;
    expect(m.patientFamily).toBe("Gößmann");
    expect(m.patientGiven).toBe("Zoë");
    expect(seg(m, "PID")[2]).toBe("MRN-16^^^^PI");
    expect(seg(m, "OBR").slice(1, 3)).toEqual(["ACC-E2E-16", "ACC-E2E-16"]);
    // The OBX findings are the SR's: same codes and probabilities as the recorded results.
    const nm = m.obx.filter((o) => o.type === "NM");
    expect(nm.map((o) => [o.code, o.system, Number(o.value)])).toEqual(rec.findings!.map((f) => [f.code.value, f.code.scheme, Number(f.probability.toFixed(4))]));
    expect(m.obx.find((o) => o.type === "ST")!.value).toBe(study);

    const [report] = fhir.resources("DiagnosticReport") as { subject: { display: string }; imagingStudy: { identifier: { value: string } }[] }[];
    expect(report!.subject.display).toBe("Zoë Gößmann");
    expect(report!.imagingStudy[0]!.identifier.value).toBe(`urn:oid:${study}`);
    expect(fhir.resources("Observation")).toHaveLength(rec.findings!.length);

    const metrics = await fx.service.metrics.registry.metrics();
    expect(metrics).toMatch(/cxr_time_to_notification_seconds_count\{destination="ris"\} 1/);
    expect(metrics).toMatch(/cxr_time_to_notification_seconds_count\{destination="fhir"\} 1/);
    expect(metrics).toMatch(/cxr_notifications\{destination="ris",state="delivered"\} 1/);
    expect(metrics).toMatch(/cxr_notification_attempts_total\{destination="ris",outcome="retry"\} 1/);
  });
});
