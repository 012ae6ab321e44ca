/**
 * Loads the triage results of a study: from the plugin's API (`GET <api>/api/studies/<uid>`), or,
 * when the plugin does not answer, from the TID 1500 SR the plugin exported to the PACS.
 */
import { absoluteRoot, fetchDicomJson, str, TAG, type DicomJson } from "./dicomweb.ts";
import { findingsFromSr } from "./sr.ts";
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
 * Validates the plugin's study JSON (a StudyRecord as the worklist API serves it, possibly wrapped
 * as `{ study: ... }`) into what the viewer shows. Throws naming the study and the field.
 */
export function parsePluginStudy(body: unknown, studyInstanceUid: string, apiBaseUrl: string): TriageStudy {
  const rec = isObject(body) && isObject(body.study) ? body.study : body;
  if (!isObject(rec)) throw new Error(`study ${studyInstanceUid}: the plugin's answer is not a JSON object`);
  const rawFindings = rec.findings;
  if (!Array.isArray(rawFindings)) throw new Error(`study ${studyInstanceUid}: no findings yet (state ${String(rec.state ?? "unknown")})`);
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
  const sr = isObject(rec.outputs) && typeof rec.outputs.sr === "string" ? rec.outputs.sr : undefined;
  return {
    studyInstanceUid,
    findings,
    heatmaps,
    ...(model ? { model } : {}),
    ...(dicomweb ? { dicomwebUrl: dicomweb } : {}),
    ...(sr ? { srSopInstanceUid: sr } : {}),
    origin: "plugin",
    notes: [],
  };
}

export async function fetchPluginStudy(opts: StudySourceOptions): Promise<TriageStudy> {
  const api = opts.apiBaseUrl.replace(/\/+$/, "");
  const url = withToken(`${api}/api/studies/${encodeURIComponent(opts.studyInstanceUid)}`, opts.token);
  const r = await fetch(url, { headers: { Accept: "application/json", ...authHeaders(opts.token) } });
  if (!r.ok) throw new Error(`plugin API ${api || location.origin}: HTTP ${r.status} for study ${opts.studyInstanceUid}`);
  return parsePluginStudy(await r.json(), opts.studyInstanceUid, api);
}

/** Findings from the newest SR of the study in the PACS. Heatmaps are not available this way (see notes). */
export async function fetchSrStudy(dicomwebUrl: string, opts: StudySourceOptions): Promise<TriageStudy> {
  const root = absoluteRoot(dicomwebUrl);
  const uid = opts.studyInstanceUid;
  const series = await fetchDicomJson(`${root}/studies/${uid}/series?Modality=SR`, opts);
  const reports: DicomJson[] = [];
  for (const s of series) {
    reports.push(...(await fetchDicomJson(`${root}/studies/${uid}/series/${str(s, TAG.SeriesInstanceUID)}/metadata`, opts)));
  }
  // Newest first: content date/time of the SR (0008,0023 / 0008,0033).
  const when = (d: DicomJson) => `${str(d, "00080023") ?? ""}${str(d, "00080033") ?? ""}`;
  reports.sort((a, b) => when(b).localeCompare(when(a)));
  for (const sr of reports) {
    const { findings, model, sourceSopInstanceUid } = findingsFromSr(sr);
    if (findings.length) {
      return {
        studyInstanceUid: uid,
        findings,
        heatmaps: [],
        ...(model ? { model } : {}),
        dicomwebUrl,
        srSopInstanceUid: str(sr, TAG.SOPInstanceUID)!,
        ...(sourceSopInstanceUid ? { sourceSopInstanceUid } : {}),
        origin: "pacs-sr",
        notes: [
          `Findings read from the Structured Report ${str(sr, TAG.SOPInstanceUID)} in the PACS.`,
          "Heatmap overlay unavailable without the plugin; its Secondary Capture heatmaps, if exported, are their own series in the PACS study.",
        ],
      };
    }
  }
  throw new Error(`study ${uid}: no triage SR with findings in the PACS (${root})`);
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

/** The plugin first; if it fails for any reason and a DICOMweb root is known, the SR in the PACS. */
export async function loadTriageStudy(opts: StudySourceOptions): Promise<TriageStudy> {
  try {
    return await fetchPluginStudy(opts);
  } catch (pluginError) {
    if (!opts.dicomwebUrl) throw pluginError;
    const study = await fetchSrStudy(opts.dicomwebUrl, opts).catch((srError: unknown) => {
      throw new Error(`${(pluginError as Error).message}; fallback: ${(srError as Error).message}`);
    });
    study.notes.unshift(`Plugin not reachable (${(pluginError as Error).message}).`);
    return study;
  }
}
