/**
 * Loads the triage results of a study: from the plugin's API (`GET <api>/api/studies/<uid>`), or,
 * when the plugin does not answer, from the TID 1500 SR the plugin exported to the PACS.
 */
import { absoluteRoot, fetchDicomJson, str, TAG, type DicomJson } from "./dicomweb.ts";
import { parametricMapsFromSr } from "./pmap.ts";
import { describeSrDevice, findingsFromSr, groupFindingLabel, isPluginSr, PLUGIN_MANUFACTURER, srDevice, type ExpectedSr } from "./sr.ts";
import type { RequestAuth, TriageFinding, TriageModel, TriageStudy } from "./types.ts";

export interface StudySourceOptions extends RequestAuth {
  /** Base URL of the plugin (where `/api/...` lives); "" = same origin as the page. */
  apiBaseUrl: string;
  studyInstanceUid: string;
  /** PACS DICOMweb root, used for the SR fallback (and by the caller for the image). */
  dicomwebUrl?: string;
}

/** Adds the API token as `token` query parameter (the plugin also accepts it as a Bearer header). */
export function withToken(url: string, token?: string): string {
  if (!token) return url;
  const u = new URL(url, typeof location !== "undefined" ? location.href : "http://localhost/");
  u.searchParams.set("token", token);
  return u.href;
}

export function authHeaders(token?: string): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Why the plugin gave no results, which decides what the reader is told beside the SR fallback:
 * "unreachable" (network failure or HTTP 5xx), "no-results" (404, or the study has no findings yet:
 * still processing, or failed), "token-refused" (401/403), "refused" (any other HTTP status).
 */
export type PluginFailure = "unreachable" | "no-results" | "token-refused" | "refused";

export class PluginStudyError extends Error {
  constructor(
    message: string,
    readonly failure: PluginFailure,
    /** What the plugin's study JSON said about its SR, when it answered with one. */
    readonly expected: ExpectedSr = {},
  ) {
    super(message);
    this.name = "PluginStudyError";
  }
}

/** The plugin's own statement of which SR is its own (model Device UID, exported SR). */
function expectedSr(rec: Record<string, unknown>): ExpectedSr {
  const deviceUid = isObject(rec.model) && typeof rec.model.deviceUid === "string" ? rec.model.deviceUid : undefined;
  const sr = isObject(rec.outputs) && typeof rec.outputs.sr === "string" ? rec.outputs.sr : undefined;
  return { ...(deviceUid ? { deviceUid } : {}), ...(sr ? { srSopInstanceUid: sr } : {}) };
}

/** States in which a study has no findings (yet): the API then answers with an empty list. */
const NO_RESULT_STATES = new Set(["received", "queued", "processing", "failed", "rejected"]);

/**
 * Validates the plugin's study JSON (a StudyRecord as the worklist API serves it, possibly wrapped
 * as `{ study: ... }`) into what the viewer shows. Throws naming the study and the field.
 */
export function parsePluginStudy(body: unknown, studyInstanceUid: string, apiBaseUrl: string): TriageStudy {
  const rec = isObject(body) && isObject(body.study) ? body.study : body;
  if (!isObject(rec)) throw new Error(`study ${studyInstanceUid}: the plugin's answer is not a JSON object`);
  const rawFindings = rec.findings;
  if (!Array.isArray(rawFindings) || (rawFindings.length === 0 && NO_RESULT_STATES.has(String(rec.state)))) {
    throw new PluginStudyError(`study ${studyInstanceUid}: no findings yet (state ${String(rec.state ?? "unknown")})`, "no-results", expectedSr(rec));
  }
  const findings: TriageFinding[] = rawFindings.map((f, i) => {
    if (!isObject(f) || typeof f.label !== "string" || typeof f.probability !== "number") {
      throw new Error(`study ${studyInstanceUid}: findings[${i}] lacks label/probability`);
    }
    return {
      label: f.label,
      probability: f.probability,
      ...(typeof f.threshold === "number" ? { threshold: f.threshold } : {}),
      ...(typeof f.positive === "boolean" ? { positive: f.positive } : {}),
    };
  });
  const api = apiBaseUrl.replace(/\/+$/, "");
  const heatmaps = (Array.isArray(rec.heatmaps) ? rec.heatmaps : []).flatMap((h) => {
    if (!isObject(h) || typeof h.label !== "string") return [];
    const path = typeof h.url === "string" ? h.url : `/api/studies/${encodeURIComponent(studyInstanceUid)}/heatmaps/${encodeURIComponent(h.label)}.png`;
    // The plugin answers with origin-relative paths; they are relative to the plugin, not to the host page.
    return [{ label: h.label, url: new URL(path, api ? `${api}/` : location.href).href }];
  });
  const m = rec.model;
  const model: TriageModel | undefined =
    isObject(m) && typeof m.name === "string"
      ? { name: m.name, version: String(m.version ?? "unknown"), ...(typeof m.training === "string" ? { training: m.training } : {}) }
      : undefined;
  const dicomweb = typeof rec.dicomwebUrl === "string" ? rec.dicomwebUrl : undefined;
  const priority = typeof rec.priority === "string" ? { level: rec.priority, ...(typeof rec.reason === "string" && rec.reason ? { reason: rec.reason } : {}) } : undefined;
  const sr = isObject(rec.outputs) && typeof rec.outputs.sr === "string" ? rec.outputs.sr : undefined;
  return {
    studyInstanceUid,
    findings,
    heatmaps,
    ...(model ? { model } : {}),
    ...(priority ? { priority } : {}),
    ...(dicomweb ? { dicomwebUrl: dicomweb } : {}),
    ...(sr ? { srSopInstanceUid: sr } : {}),
    origin: "plugin",
    notes: [],
  };
}

export async function fetchPluginStudy(opts: StudySourceOptions): Promise<TriageStudy> {
  const api = opts.apiBaseUrl.replace(/\/+$/, "");
  const url = withToken(`${api}/api/studies/${encodeURIComponent(opts.studyInstanceUid)}`, opts.token);
  const where = `plugin API ${api || location.origin}`;
  const r = await fetch(url, { headers: { Accept: "application/json", ...authHeaders(opts.token) } }).catch((e: unknown) => {
    throw new PluginStudyError(`${where}: ${(e as Error).message} for study ${opts.studyInstanceUid}`, "unreachable");
  });
  if (!r.ok) {
    const failure: PluginFailure = r.status >= 500 ? "unreachable" : r.status === 404 ? "no-results" : r.status === 401 || r.status === 403 ? "token-refused" : "refused";
    throw new PluginStudyError(`${where}: HTTP ${r.status} for study ${opts.studyInstanceUid}`, failure);
  }
  return parsePluginStudy(await r.json(), opts.studyInstanceUid, api);
}

/**
 * Findings from the plugin's SR of the study in the PACS: the one the plugin's API named, else the
 * newest with findings that this plugin wrote (isPluginSr); other devices' SRs are skipped.
 * Heatmaps are the Parametric Maps that SR references (read with WADO-RS by the overlay).
 */
export async function fetchSrStudy(dicomwebUrl: string, opts: StudySourceOptions, expected: ExpectedSr = {}): Promise<TriageStudy> {
  const root = absoluteRoot(dicomwebUrl);
  const uid = opts.studyInstanceUid;
  const series = await fetchDicomJson(`${root}/studies/${uid}/series?Modality=SR`, opts);
  const reports: DicomJson[] = [];
  for (const s of series) {
    reports.push(...(await fetchDicomJson(`${root}/studies/${uid}/series/${str(s, TAG.SeriesInstanceUID)}/metadata`, opts)));
  }
  // Newest first: content date/time of the SR (0008,0023 / 0008,0033).
  const when = (d: DicomJson) => `${str(d, "00080023") ?? ""}${str(d, "00080033") ?? ""}`;
  // The SR the plugin named comes first, whatever its date.
  const named = (d: DicomJson) => (expected.srSopInstanceUid && str(d, TAG.SOPInstanceUID) === expected.srSopInstanceUid ? 1 : 0);
  reports.sort((a, b) => named(b) - named(a) || when(b).localeCompare(when(a)));
  const ours = reports.filter((sr) => isPluginSr(sr, expected));
  for (const sr of ours) {
    const { findings, model, sourceSopInstanceUid } = findingsFromSr(sr);
    if (findings.length) {
      const maps = parametricMapsFromSr(sr, groupFindingLabel);
      return {
        studyInstanceUid: uid,
        findings,
        heatmaps: maps.map((m) => ({ label: m.label, url: `${root}/studies/${uid}/series/${m.seriesInstanceUid}/instances/${m.sopInstanceUid}`, format: "parametric-map" as const })),
        ...(model ? { model } : {}),
        dicomwebUrl,
        srSopInstanceUid: str(sr, TAG.SOPInstanceUID)!,
        ...(sourceSopInstanceUid ? { sourceSopInstanceUid } : {}),
        origin: "pacs-sr",
        notes: [
          `Findings read from the Structured Report ${str(sr, TAG.SOPInstanceUID)} in the PACS, written by ${describeSrDevice(srDevice(sr))}.`,
          maps.length
            ? `Heatmaps read from the plugin's Parametric Maps in the PACS (${maps.map((m) => m.label).join(", ")}).`
            : "Heatmap overlay unavailable without the plugin: the SR names no Parametric Map; its Secondary Capture heatmaps, if exported, are their own series in the PACS study.",
        ],
      };
    }
  }
  const skipped = reports.length - ours.length;
  const whose = expected.deviceUid ? `by this plugin's model (Device UID ${expected.deviceUid})` : `by this plugin (Manufacturer ${PLUGIN_MANUFACTURER})`;
  throw new Error(`study ${uid}: no triage SR with findings written ${whose} in the PACS (${root})${skipped ? `; ${skipped} SR(s) of other devices skipped` : ""}`);
}

/**
 * The radiograph the plugin's SR is about (its Image Library reference), so that the overlay lands on
 * the image the plugin analysed even when the study holds several. Undefined when the SR is not in the PACS.
 */
export async function srSourceImage(dicomwebUrl: string, studyInstanceUid: string, srSopInstanceUid: string, auth: RequestAuth): Promise<string | undefined> {
  const root = absoluteRoot(dicomwebUrl);
  const hit = (await fetchDicomJson(`${root}/studies/${studyInstanceUid}/instances?SOPInstanceUID=${encodeURIComponent(srSopInstanceUid)}`, auth))[0];
  const series = str(hit, TAG.SeriesInstanceUID);
  if (!series) return undefined;
  const [sr] = await fetchDicomJson(`${root}/studies/${studyInstanceUid}/series/${series}/instances/${srSopInstanceUid}/metadata`, auth);
  return sr ? findingsFromSr(sr).sourceSopInstanceUid : undefined;
}

/** What the reader is told about the plugin when its SR is shown instead. */
export function pluginFailureNote(error: Error): string {
  const failure = error instanceof PluginStudyError ? error.failure : "unreachable";
  const lead = {
    unreachable: "Plugin not reachable",
    "no-results": "No results from the plugin yet for this study",
    "token-refused": "The plugin refused the API token",
    refused: "The plugin refused the request",
  }[failure];
  return `${lead} (${error.message}).`;
}

/**
 * The plugin first; if it gives no results (unreachable, none yet, token refused) and a DICOMweb root
 * is known, this plugin's SR in the PACS, with a note saying why.
 */
export async function loadTriageStudy(opts: StudySourceOptions): Promise<TriageStudy> {
  try {
    return await fetchPluginStudy(opts);
  } catch (e) {
    const pluginError = e as Error;
    if (!opts.dicomwebUrl) throw pluginError;
    const expected = pluginError instanceof PluginStudyError ? pluginError.expected : {};
    const note = pluginFailureNote(pluginError);
    const study = await fetchSrStudy(opts.dicomwebUrl, opts, expected).catch((srError: unknown) => {
      throw new Error(`${note.replace(/\.$/, "")}; fallback: ${(srError as Error).message}`);
    });
    study.notes.unshift(note);
    return study;
  }
}
