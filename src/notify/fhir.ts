import { createHash } from "node:crypto";
import type { FhirDestination } from "../config/notify.ts";
import type { CodedConcept } from "../model/card.ts";
import { postJson, retryableStatus } from "./http.ts";
import type { DeliveryOutcome } from "./outcome.ts";
import { CHEST_XRAY_STUDY_CODE, personNameComponents, PRIORITIZATION_STATEMENT, type TriageReport } from "./report.ts";

/**
 * FHIR R4: the triage result as a transaction Bundle — one DiagnosticReport, one Observation per
 * finding, the model as a Device — every entry a conditional create (ifNoneExist on its
 * identifier), so that sending the same results again creates nothing new. Profile: README.
 */

type Json = Record<string, unknown>;

/** Identifier systems of what this service creates (URIs under the DICOM UID root notation). */
export const FHIR_SYSTEMS = {
  dicomUid: "urn:dicom:uid",
  report: "urn:cxr-triage:diagnostic-report",
  observation: "urn:cxr-triage:observation",
  patientId: "urn:cxr-triage:patient-id",
} as const;

/** FHIR system URI of a DICOM Coding Scheme Designator. */
const CODE_SYSTEMS: Record<string, string> = {
  SCT: "http://snomed.info/sct",
  DCM: "http://dicom.nema.org/resources/ontology/DCM",
  LN: "http://loinc.org",
};

export function fhirCoding(c: CodedConcept): Json {
  const system = CODE_SYSTEMS[c.scheme];
  if (!system) throw new Error(`coding scheme ${c.scheme} has no FHIR system URI`);
  return { system, code: c.value, display: c.meaning };
}

/** A urn:uuid (RFC 4122 version 5 style, from a name) so that the same results give the same fullUrls. */
export function nameUuid(name: string): string {
  const h = createHash("sha1").update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** DICOM PN (Family^Given^Middle^Prefix^Suffix) → HumanName. */
export function humanName(pn: string): Json {
  const c = personNameComponents(pn);
  const [family, given, middle, prefix, suffix] = [c.family, c.given, c.middle, c.prefix, c.suffix].map((s) => s?.trim());
  const givens = [given, middle].filter((s): s is string => !!s);
  const name: Json = { use: "official", text: [prefix, ...givens, family, suffix].filter(Boolean).join(" ") };
  if (family) name.family = family;
  if (givens.length) name.given = givens;
  if (prefix) name.prefix = [prefix];
  if (suffix) name.suffix = [suffix];
  return name;
}

const ifNoneExist = (system: string, value: string) => `identifier=${encodeURIComponent(`${system}|${value}`)}`;

/** The transaction Bundle of a study's triage results. */
export function buildBundle(report: TriageReport, now = new Date()): Json {
  const version = report.model.version;
  const key = `${report.studyInstanceUid}/${version}`;
  const deviceId = { system: FHIR_SYSTEMS.dicomUid, value: `urn:oid:${report.model.deviceUid}` };
  const deviceUrl = nameUuid(`device|${report.model.deviceUid}`);
  // The patient by identifier (logical reference): the RIS owns Patient resources; this service never creates one.
  const subject: Json | undefined = report.patientId
    ? { identifier: { system: FHIR_SYSTEMS.patientId, value: report.patientId }, ...(report.patientName && { display: humanName(report.patientName).text }) }
    : undefined;
  const imaging = { coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "imaging", display: "Imaging" }] };
  const device: Json = {
    resourceType: "Device",
    identifier: [deviceId],
    status: "active",
    deviceName: [{ name: report.model.name, type: "model-name" }],
    version: [{ value: version }],
    note: [{ text: `${report.model.training}. ${PRIORITIZATION_STATEMENT}` }],
  };
  const observations = report.findings.map((f) => {
    const id = { system: FHIR_SYSTEMS.observation, value: `${key}/${f.label}` };
    const resource: Json = {
      resourceType: "Observation",
      identifier: [id],
      status: "preliminary",
      category: [imaging],
      code: { coding: [fhirCoding(f.code)], text: `Probability of ${f.code.meaning}` },
      ...(subject && { subject }),
      effectiveDateTime: report.resultsAt,
      issued: now.toISOString(),
      valueQuantity: { value: Number(f.probability.toFixed(4)), unit: "probability", system: "http://unitsofmeasure.org", code: "1" },
      interpretation: [{
        coding: [{ system: "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", code: f.positive ? "POS" : "NEG", display: f.positive ? "Positive" : "Negative" }],
        text: `${f.positive ? "at or above" : "below"} the operating point ${f.threshold.toFixed(4)}`,
      }],
      referenceRange: [{ high: { value: Number(f.threshold.toFixed(4)), system: "http://unitsofmeasure.org", code: "1" }, text: "operating point" }],
      device: { reference: deviceUrl },
    };
    return { fullUrl: nameUuid(`observation|${id.value}`), resource, request: { method: "POST", url: "Observation", ifNoneExist: ifNoneExist(id.system, id.value) } };
  });
  const reportId = { system: FHIR_SYSTEMS.report, value: key };
  const diagnosticReport: Json = {
    resourceType: "DiagnosticReport",
    identifier: [reportId],
    status: "preliminary",
    category: [
      { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0074", code: "RAD", display: "Radiology" }] },
      imaging,
    ],
    code: { coding: [{ ...CHEST_XRAY_STUDY_CODE }] },
    ...(subject && { subject }),
    effectiveDateTime: report.resultsAt,
    issued: now.toISOString(),
    result: observations.map((o) => ({ reference: o.fullUrl })),
    imagingStudy: [{ type: "ImagingStudy", identifier: { system: FHIR_SYSTEMS.dicomUid, value: `urn:oid:${report.studyInstanceUid}` } }],
    conclusion: `${PRIORITIZATION_STATEMENT}. Triage priority ${report.priority.priority}: ${report.priority.reason}`,
  };
  return {
    resourceType: "Bundle",
    type: "transaction",
    entry: [
      { fullUrl: deviceUrl, resource: device, request: { method: "POST", url: "Device", ifNoneExist: ifNoneExist(deviceId.system, deviceId.value) } },
      ...observations,
      { fullUrl: nameUuid(`report|${key}`), resource: diagnosticReport, request: { method: "POST", url: "DiagnosticReport", ifNoneExist: ifNoneExist(reportId.system, reportId.value) } },
    ],
  };
}

/** POSTs the Bundle to the base URL; delivered when the server answers a transaction-response with every entry 200/201. */
export async function sendBundle(report: TriageReport, dest: FhirDestination, opts: { timeoutMs: number }): Promise<DeliveryOutcome> {
  const res = await postJson(dest.url, JSON.stringify(buildBundle(report)), dest.headers, opts.timeoutMs, "application/fhir+json");
  if (res.status === undefined) return { delivered: false, error: `${dest.url}: ${res.error}`, retry: true };
  if (res.status < 200 || res.status >= 300) return { delivered: false, error: `${dest.url}: HTTP ${res.status} ${outcomeText(res.text)}`, retry: retryableStatus(res.status) };
  let body: { resourceType?: string; type?: string; entry?: { response?: { status?: string } }[] };
  try {
    body = JSON.parse(res.text) as typeof body;
  } catch {
    return { delivered: false, error: `${dest.url}: HTTP ${res.status} but the body is not JSON`, retry: true };
  }
  const statuses = (body.entry ?? []).map((e) => e.response?.status ?? "");
  if (body.resourceType !== "Bundle" || body.type !== "transaction-response" || statuses.length === 0 || !statuses.every((s) => /^20[01]\b/.test(s))) {
    return { delivered: false, error: `${dest.url}: not a successful transaction-response (${body.resourceType}/${body.type}: ${statuses.join(", ")})`, retry: true };
  }
  const created = statuses.filter((s) => s.startsWith("201")).length;
  return { delivered: true, ack: `HTTP ${res.status}: ${created} created, ${statuses.length - created} already there` };
}

/** The diagnostics of an OperationOutcome, else the start of the body. */
function outcomeText(text: string): string {
  try {
    const o = JSON.parse(text) as { issue?: { diagnostics?: string; details?: { text?: string } }[] };
    const msgs = (o.issue ?? []).map((i) => i.diagnostics ?? i.details?.text).filter(Boolean);
    if (msgs.length) return msgs.join("; ").slice(0, 300);
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}
