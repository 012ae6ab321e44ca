import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findingCode } from "../../src/model/labels.ts";
import { buildBundle } from "../../src/notify/fhir.ts";
import { PRIORITIZATION_STATEMENT, triageReport } from "../../src/notify/report.ts";
import { openSqliteStore, type Store } from "../../src/store/index.ts";
import { tempDir } from "../helpers/tmp.ts";
import { checkResource, checkTransactionBundle } from "./fhir-r4.ts";
import { startFhirServer } from "./fhir-server.ts";
import { config, notifier, STUDY, studyWithResults, waitFor } from "./fixture.ts";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe("FHIR R4 transaction Bundle", () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: Store;
  let fhir: Awaited<ReturnType<typeof startFhirServer>>;
  beforeEach(async () => {
    tmp = tempDir("cxr-fhir-");
    store = openSqliteStore(join(tmp.dir, "store.sqlite"), { nodeId: "n1" });
    fhir = await startFhirServer();
  });
  afterEach(async () => {
    await fhir.close();
    await store.close();
    tmp.cleanup();
  });
  const cfg = () => config({ retryInitialSeconds: 0.1, retryMaxSeconds: 0.5, timeoutSeconds: 3, destinations: [{ kind: "fhir", name: "fhir", url: fhir.url }] });
  const outbox = async () => (await store.notifications(STUDY))[0]!;

  it("the checker refuses what R4 forbids (so that its passing means something)", () => {
    expect(checkResource({ resourceType: "Observation", status: "done", code: { text: "x" } })).toEqual([expect.stringMatching(/status: "done" is not in the required value set/)]);
    expect(checkResource({ resourceType: "Observation", status: "final" })).toEqual(["Observation.code: required"]);
    expect(checkResource({ resourceType: "DiagnosticReport", status: "final", code: { text: "x" }, result: { reference: "Observation/1" } })).toEqual(["DiagnosticReport.result: expected a non-empty array"]);
    expect(checkResource({ resourceType: "Observation", status: "final", code: { text: "x" }, effectiveDateTime: "2024-13-01", valueQuantity: { value: "0.5" } })).toHaveLength(2);
    expect(checkResource({ resourceType: "Device", deviceName: [{ name: "m", type: "model" }], colour: "red" })).toHaveLength(2);
    expect(checkTransactionBundle({ resourceType: "Bundle", type: "batch", entry: [{ fullUrl: "x", resource: { resourceType: "Device" } }] })).toHaveLength(3);
  });

  it("DiagnosticReport + one Observation per finding + the Device, valid R4, accepted; a re-send creates nothing twice", async () => {
    const c = cfg();
    await studyWithResults(store, c);
    const bundle = buildBundle(triageReport((await store.get(STUDY))!, c.priority));
    expect(checkTransactionBundle(bundle)).toEqual([]);
    const n = notifier(store, c);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    expect((await outbox()).ack).toBe("HTTP 200: 16 created, 0 already there");
    const [report] = fhir.resources("DiagnosticReport") as Json[];
    const observations = fhir.resources("Observation") as Json[];
    const [device] = fhir.resources("Device") as Json[];
    expect(fhir.resources("DiagnosticReport")).toHaveLength(1);
    expect(observations).toHaveLength(14);
    expect(report.status).toBe("preliminary");
    expect(report.category.map((c: Json) => c.coding[0].code)).toEqual(["RAD", "imaging"]);
    expect(report.code.coding[0]).toMatchObject({ system: "http://loinc.org", code: "36643-5" });
    expect(report.imagingStudy[0].identifier).toEqual({ system: "urn:dicom:uid", value: `urn:oid:${STUDY}` });
    expect(report.conclusion).toContain(PRIORITIZATION_STATEMENT);
    // Non-ASCII (ISO_IR 192) name intact in JSON (UTF-8 on the wire).
    expect(report.subject.display).toBe("Dr. Jörg Ñandú Müller-Łukasz");
    // The server resolved the Bundle's local references to what it created.
    expect(report.result.map((r: Json) => r.reference).sort()).toEqual(observations.map((o) => `Observation/${o.id}`).sort());
    const ptx = observations.find((o) => o.code.coding[0].code === findingCode("Pneumothorax").value)!;
    expect(ptx.code.coding[0].system).toBe("http://snomed.info/sct");
    expect(ptx.valueQuantity).toMatchObject({ value: 0.91, system: "http://unitsofmeasure.org", code: "1" });
    expect(ptx.interpretation[0].coding[0].code).toBe("POS");
    expect(observations.filter((o) => o.interpretation[0].coding[0].code === "POS")).toHaveLength(1);
    expect(ptx.device.reference).toBe(`Device/${device.id}`);
    expect(device.version[0].value).toBe("1.0.0");
    expect(device.identifier[0]).toEqual({ system: "urn:dicom:uid", value: "urn:oid:2.25.123456789" });
    const infiltrate = observations.find((o) => o.code.coding[0].code === findingCode("Infiltration").value)!;
    expect(infiltrate.code.coding[0].system).toBe("http://dicom.nema.org/resources/ontology/DCM");

    // The same results sent again (e.g. a node died after the server committed, before the outbox did): nothing new.
    await studyWithResults(store, c, { key: "key-2", sop: 2 });
    const again = notifier(store, c);
    again.start();
    await waitFor("second delivery", async () => (await outbox()).state === "delivered" && (await outbox()).resultsKey === "key-2");
    await again.stop();
    expect((await outbox()).ack).toBe("HTTP 200: 0 created, 16 already there");
    expect(fhir.resources("DiagnosticReport")).toHaveLength(1);
    expect(fhir.resources("Observation")).toHaveLength(14);
    expect(fhir.resources("Device")).toHaveLength(1);
  });

  it("a server error is retried until the transaction succeeds; a 400 is failed with the server's reason", async () => {
    const c = cfg();
    fhir.failNext.push(503, 503);
    await studyWithResults(store, c);
    let n = notifier(store, c);
    n.start();
    await waitFor("delivery", async () => (await outbox()).state === "delivered");
    await n.stop();
    expect(await outbox()).toMatchObject({ attempts: 3 });
    expect(fhir.resources("DiagnosticReport")).toHaveLength(1);
    fhir.failNext.push(400);
    await studyWithResults(store, c, { key: "key-2", sop: 2 });
    n = notifier(store, c);
    n.start();
    await waitFor("failure", async () => (await outbox()).state === "failed");
    await n.stop();
    expect((await outbox()).lastError).toMatch(/HTTP 400 failing as the test asked/);
  });
});
