/**
 * A strict structural check of the FHIR R4 (4.0.1) resources this service sends, written from the
 * R4 specification's element tables (cardinality, types, required value sets, invariants) for the
 * elements these resources may carry. Unknown elements are errors. It is the test's own reading of
 * the specification, kept apart from src/notify/fhir.ts, which builds the resources.
 */

type Kind = "string" | "code" | "uri" | "dateTime" | "instant" | "decimal" | "boolean" | "markdown" | `#${string}`;
interface Element { type: Kind; min?: 0 | 1; max?: 1 | "*"; codes?: readonly string[] }
type Def = Record<string, Element>;

const DATE_TIME = /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/;
const INSTANT = /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;
const CODE = /^[^\s]+( [^\s]+)*$/;
const URI = /^\S+$/;

const DATATYPES: Record<string, Def> = {
  Coding: { system: { type: "uri" }, version: { type: "string" }, code: { type: "code" }, display: { type: "string" }, userSelected: { type: "boolean" } },
  CodeableConcept: { coding: { type: "#Coding", max: "*" }, text: { type: "string" } },
  Identifier: {
    use: { type: "code", codes: ["usual", "official", "temp", "secondary", "old"] }, type: { type: "#CodeableConcept" }, system: { type: "uri" }, value: { type: "string" },
  },
  Reference: { reference: { type: "string" }, type: { type: "uri" }, identifier: { type: "#Identifier" }, display: { type: "string" } },
  Quantity: { value: { type: "decimal" }, comparator: { type: "code", codes: ["<", "<=", ">=", ">"] }, unit: { type: "string" }, system: { type: "uri" }, code: { type: "code" } },
  Annotation: { text: { type: "markdown", min: 1 }, time: { type: "dateTime" } },
  ReferenceRange: { low: { type: "#Quantity" }, high: { type: "#Quantity" }, type: { type: "#CodeableConcept" }, text: { type: "string" } },
  DeviceName: { name: { type: "string", min: 1 }, type: { type: "code", min: 1, codes: ["udi-label-name", "user-friendly-name", "patient-reported-name", "manufacturer-name", "model-name", "other"] } },
  DeviceVersion: { type: { type: "#CodeableConcept" }, component: { type: "#Identifier" }, value: { type: "string", min: 1 } },
  BundleRequest: {
    method: { type: "code", min: 1, codes: ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"] }, url: { type: "uri", min: 1 },
    ifNoneMatch: { type: "string" }, ifModifiedSince: { type: "instant" }, ifMatch: { type: "string" }, ifNoneExist: { type: "string" },
  },
};

const OBSERVATION_STATUS = ["registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"];
const RESOURCES: Record<string, Def> = {
  DiagnosticReport: {
    identifier: { type: "#Identifier", max: "*" },
    status: { type: "code", min: 1, codes: ["registered", "partial", "preliminary", "final", "amended", "corrected", "appended", "cancelled", "entered-in-error", "unknown"] },
    category: { type: "#CodeableConcept", max: "*" }, code: { type: "#CodeableConcept", min: 1 }, subject: { type: "#Reference" },
    effectiveDateTime: { type: "dateTime" }, issued: { type: "instant" }, result: { type: "#Reference", max: "*" }, imagingStudy: { type: "#Reference", max: "*" },
    conclusion: { type: "string" }, conclusionCode: { type: "#CodeableConcept", max: "*" },
  },
  Observation: {
    identifier: { type: "#Identifier", max: "*" }, status: { type: "code", min: 1, codes: OBSERVATION_STATUS }, category: { type: "#CodeableConcept", max: "*" },
    code: { type: "#CodeableConcept", min: 1 }, subject: { type: "#Reference" }, effectiveDateTime: { type: "dateTime" }, issued: { type: "instant" },
    valueQuantity: { type: "#Quantity" }, interpretation: { type: "#CodeableConcept", max: "*" }, note: { type: "#Annotation", max: "*" },
    device: { type: "#Reference" }, referenceRange: { type: "#ReferenceRange", max: "*" },
  },
  Device: {
    identifier: { type: "#Identifier", max: "*" }, status: { type: "code", codes: ["active", "inactive", "entered-in-error", "unknown"] },
    manufacturer: { type: "string" }, deviceName: { type: "#DeviceName", max: "*" }, modelNumber: { type: "string" }, version: { type: "#DeviceVersion", max: "*" },
    note: { type: "#Annotation", max: "*" },
  },
};
/** Where a Reference of each resource may point (R4 target profiles). */
const TARGETS: Record<string, string[]> = {
  "DiagnosticReport.result": ["Observation"], "DiagnosticReport.imagingStudy": ["ImagingStudy"], "Observation.device": ["Device", "DeviceMetric"],
  "DiagnosticReport.subject": ["Patient", "Group", "Device", "Location"], "Observation.subject": ["Patient", "Group", "Device", "Location"],
};

function checkValue(path: string, v: unknown, el: Element, errors: string[]): void {
  const t = el.type;
  if (t.startsWith("#")) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return void errors.push(`${path}: expected ${t.slice(1)} object`);
    checkObject(path, v as Record<string, unknown>, DATATYPES[t.slice(1)]!, errors);
    if (Object.keys(v).length === 0) errors.push(`${path}: empty element (ele-1)`);
    return;
  }
  if (t === "decimal") return void (typeof v !== "number" || !Number.isFinite(v) ? errors.push(`${path}: not a decimal`) : undefined);
  if (t === "boolean") return void (typeof v !== "boolean" ? errors.push(`${path}: not a boolean`) : undefined);
  if (typeof v !== "string" || v.length === 0) return void errors.push(`${path}: expected a non-empty ${t}`);
  if (v.trim() !== v && t !== "markdown" && t !== "string") errors.push(`${path}: leading/trailing whitespace`);
  if (t === "code" && !CODE.test(v)) errors.push(`${path}: not a code`);
  if (t === "uri" && !URI.test(v)) errors.push(`${path}: not a uri`);
  if (t === "dateTime" && !DATE_TIME.test(v)) errors.push(`${path}: not a dateTime`);
  if (t === "instant" && !INSTANT.test(v)) errors.push(`${path}: not an instant`);
  if (el.codes && !el.codes.includes(v)) errors.push(`${path}: "${v}" is not in the required value set (${el.codes.join(", ")})`);
}

function checkObject(path: string, obj: Record<string, unknown>, def: Def, errors: string[]): void {
  for (const k of Object.keys(obj)) if (!(k in def) && k !== "resourceType" && k !== "id") errors.push(`${path}.${k}: not an element here`);
  for (const [k, el] of Object.entries(def)) {
    const v = obj[k];
    if (v === undefined) {
      if (el.min === 1) errors.push(`${path}.${k}: required`);
      continue;
    }
    if (el.max === "*") {
      if (!Array.isArray(v) || v.length === 0) errors.push(`${path}.${k}: expected a non-empty array`);
      else v.forEach((x, i) => checkValue(`${path}.${k}[${i}]`, x, el, errors));
    } else if (Array.isArray(v)) errors.push(`${path}.${k}: at most one (not an array)`);
    else checkValue(`${path}.${k}`, v, el, errors);
  }
}

/** Errors of one resource (empty: valid), including the invariants these resources are subject to. */
export function checkResource(r: Record<string, unknown>, path = String(r.resourceType)): string[] {
  const def = RESOURCES[String(r.resourceType)];
  if (!def) return [`${path}: resource type ${String(r.resourceType)} not checked here`];
  const errors: string[] = [];
  checkObject(path, r, def, errors);
  const type = String(r.resourceType);
  for (const [k, targets] of Object.entries(TARGETS)) {
    const [rt, el] = k.split(".");
    if (rt !== type || r[el!] === undefined) continue;
    for (const ref of ([] as Record<string, unknown>[]).concat(r[el!] as Record<string, unknown>)) {
      if (ref.type !== undefined && !targets.includes(String(ref.type))) errors.push(`${path}.${el}: type ${String(ref.type)} not allowed (${targets.join(", ")})`);
      if (ref.reference === undefined && ref.identifier === undefined && ref.display === undefined) errors.push(`${path}.${el}: ref-1 (reference, identifier or display)`);
    }
  }
  if (type === "Observation") {
    for (const rr of (r.referenceRange as Record<string, unknown>[] | undefined) ?? []) if (!rr.low && !rr.high && !rr.text) errors.push(`${path}.referenceRange: obs-3 (low, high or text)`);
    const q = r.valueQuantity as Record<string, unknown> | undefined;
    if (q && q.code !== undefined && q.system === undefined) errors.push(`${path}.valueQuantity: qty-3 (a code needs a system)`);
  }
  return errors;
}

/** Errors of a transaction Bundle and every resource in it (bdl-7: fullUrl unique; request per entry). */
export function checkTransactionBundle(b: Record<string, unknown>): string[] {
  const errors: string[] = [];
  if (b.resourceType !== "Bundle") errors.push("resourceType: not Bundle");
  if (b.type !== "transaction") errors.push(`Bundle.type: ${String(b.type)} (expected transaction)`);
  for (const k of Object.keys(b)) if (!["resourceType", "type", "entry", "id", "meta", "identifier", "timestamp"].includes(k)) errors.push(`Bundle.${k}: not an element here`);
  const entries = (b.entry as Record<string, unknown>[] | undefined) ?? [];
  if (entries.length === 0) errors.push("Bundle.entry: empty");
  const fullUrls = entries.map((e) => e.fullUrl);
  if (new Set(fullUrls).size !== fullUrls.length) errors.push("Bundle: bdl-7 (fullUrl must be unique)");
  entries.forEach((e, i) => {
    const path = `Bundle.entry[${i}]`;
    for (const k of Object.keys(e)) if (!["fullUrl", "resource", "request"].includes(k)) errors.push(`${path}.${k}: not an element here`);
    if (typeof e.fullUrl !== "string" || !/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(e.fullUrl)) errors.push(`${path}.fullUrl: not a urn:uuid`);
    if (!e.request) errors.push(`${path}.request: required in a transaction (bdl-3)`);
    else checkObject(`${path}.request`, e.request as Record<string, unknown>, DATATYPES.BundleRequest!, errors);
    const res = e.resource as Record<string, unknown> | undefined;
    if (!res) return void errors.push(`${path}.resource: required for POST`);
    const url = (e.request as { url?: string } | undefined)?.url;
    if (url !== undefined && url !== res.resourceType) errors.push(`${path}.request.url: ${url} for a ${String(res.resourceType)}`);
    errors.push(...checkResource(res, `${path}.resource(${String(res.resourceType)})`));
    // Local references point at entries of this Bundle.
    JSON.stringify(res, (k, v: unknown) => {
      if (k === "reference" && typeof v === "string" && v.startsWith("urn:uuid:") && !fullUrls.includes(v)) errors.push(`${path}: reference ${v} to no entry`);
      return v;
    });
  });
  return errors;
}
