import type { SelectionConfig } from "../config/service.ts";
import type { InstanceRecord, SeriesDecision } from "../store/types.ts";

/** SR storage classes (PS3.4 B.5): never image input, and our own results are SR. */
const SR_SOP_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88.";

export interface InstanceDecision {
  eligible: boolean;
  /** Why it was rejected, or how it was judged eligible (e.g. "DX CHEST PA (ViewPosition)"). */
  reason: string;
  /** The frontal view found, for choosing among eligible images (PA before AP). */
  view?: string;
}

/** What selection looks at: an archived instance's identity and header (a stored record, or QIDO/WADO-RS metadata). */
export type SelectableInstance = Pick<InstanceRecord, "sopInstanceUid" | "sopClassUid" | "seriesInstanceUid" | "header">;

export interface StudySelection<T extends SelectableInstance = InstanceRecord> {
  series: SeriesDecision[];
  /** The image the pipeline runs on, when any is eligible. */
  chosen?: T;
  /** Why nothing is eligible (every series' reason), when nothing is. */
  reason?: string;
}

const norm = (s: string | undefined) => (s ?? "").trim().toUpperCase();

/** Words that say "chest" in descriptions when Body Part Examined is empty. */
const CHEST_WORDS = /\b(CHEST|THORAX|THORAC\w*|LUNGS?|CXR|TORAX|PECHO|POUMON|PULMON\w*|TX)\b/;
const LATERAL_WORDS = /\b(LAT|LATERAL|LL|RL|LLD|RLD)\b/;

/** The view of an image: ViewPosition, then View Code Sequence, then text fallbacks, then Patient Orientation. */
export function frontalView(h: InstanceRecord["header"]): { view?: string; source: string; value?: string } {
  const vp = norm(h.viewPosition);
  if (vp) return { view: vp, source: "ViewPosition", value: vp };
  const code = `${norm(h.viewCodeMeaning)} ${norm(h.viewCodeValue)}`.trim();
  if (code) {
    // SNOMED/DCM view codes (CID 4010): R-10214 / 399348003 postero-anterior, R-10206 / 272479005 antero-posterior
    if (/POSTERO-?ANTERIOR|R-10214|399348003/.test(code)) return { view: "PA", source: "ViewCodeSequence", value: code };
    if (/ANTERO-?POSTERIOR|R-10206|272479005/.test(code)) return { view: "AP", source: "ViewCodeSequence", value: code };
    if (/LATERAL|R-10232|R-10236|399198007|399173006/.test(code)) return { view: "LATERAL", source: "ViewCodeSequence", value: code };
  }
  for (const [source, text] of [
    ["ImageComments", h.imageComments],
    ["SeriesDescription", h.seriesDescription],
    ["ProtocolName", h.protocolName],
  ] as const) {
    const t = norm(text);
    if (!t) continue;
    if (/\bPA\b|POSTERO-?ANTERIOR/.test(t)) return { view: "PA", source, value: t };
    if (/\bAP\b|ANTERO-?POSTERIOR|PORTABLE/.test(t)) return { view: "AP", source, value: t };
    if (LATERAL_WORDS.test(t)) return { view: "LATERAL", source, value: t };
  }
  // Patient Position (0018,5100) is meant for HFS/FFS…, but some chest digitisers put the view there.
  const pp = norm(h.patientPosition);
  if (pp === "PA" || pp === "AP") return { view: pp, source: "PatientPosition", value: pp };
  if (pp && /^(LL|RL|LAT|LATERAL|XX)$/.test(pp)) return { view: pp, source: "PatientPosition", value: pp };
  // Patient Orientation: the row direction of a frontal chest is L or R; of a lateral it is A or P.
  const po = norm(h.patientOrientation).split("\\")[0] ?? "";
  if (/^[LR]/.test(po)) return { view: "FRONTAL", source: "PatientOrientation", value: norm(h.patientOrientation) };
  if (/^[AP]/.test(po)) return { view: "LATERAL", source: "PatientOrientation", value: norm(h.patientOrientation) };
  return { source: "none" };
}

/**
 * Why an Image Type disqualifies an image, or undefined: each configured term is matched only at its
 * position (PS3.3 C.7.6.1.1.2), so DERIVED\PRIMARY (a processed acquisition) is not SECONDARY.
 */
export function rejectedImageType(imageType: readonly string[], rules: SelectionConfig["rejectImageTypes"]): string | undefined {
  const values = imageType.map(norm);
  const hit = (i: number, terms: string[]) => terms.map(norm).includes(values[i] ?? "");
  const shown = values.join("\\");
  if (values.length > 0 && hit(0, rules.value1)) return `Image Type ${shown}: value 1 is ${values[0]}`;
  if (values.length > 1 && hit(1, rules.value2)) return `Image Type ${shown}: value 2 is ${values[1]}`;
  const later = values.slice(2).filter((v) => rules.value3AndLater.map(norm).includes(v));
  if (later.length) return `Image Type ${shown}: value 3+ is ${later.join("/")}`;
  return undefined;
}

/** Whether one instance is a chest frontal CR/DX original image this plugin should read. */
export function judgeInstance(inst: SelectableInstance, cfg: SelectionConfig, ownOutputUids: ReadonlySet<string> = new Set()): InstanceDecision {
  const h = inst.header;
  const own = new Set(cfg.ownManufacturers.map(norm));
  if (ownOutputUids.has(inst.sopInstanceUid)) return { eligible: false, reason: "one of this plugin's own result objects" };
  if (inst.sopClassUid.startsWith(SR_SOP_CLASS_PREFIX)) return { eligible: false, reason: `SOP class ${inst.sopClassUid} is a structured report, not an image` };
  if (own.has(norm(h.manufacturer))) return { eligible: false, reason: `Manufacturer "${h.manufacturer}" is this plugin: its own output` };
  if ((h.contributingManufacturers ?? []).some((m) => own.has(norm(m)))) return { eligible: false, reason: "Contributing Equipment names this plugin: its own output" };

  const modality = norm(h.modality);
  if (!cfg.modalities.map(norm).includes(modality)) return { eligible: false, reason: `modality ${modality || "(empty)"} is not ${cfg.modalities.join("/")}` };

  const imageTypeReason = rejectedImageType(h.imageType ?? [], cfg.rejectImageTypes);
  if (imageTypeReason) return { eligible: false, reason: imageTypeReason };

  const bodyPart = norm(h.bodyPartExamined);
  if (bodyPart) {
    if (!cfg.chestBodyParts.map(norm).includes(bodyPart)) return { eligible: false, reason: `body part ${bodyPart} is not chest` };
  } else if (cfg.emptyBodyPart === "reject") {
    return { eligible: false, reason: "Body Part Examined is empty" };
  } else if (cfg.emptyBodyPart === "description") {
    const text = [h.studyDescription, h.seriesDescription, h.protocolName].map(norm).join(" ");
    if (!CHEST_WORDS.test(text)) return { eligible: false, reason: "Body Part Examined is empty and no description mentions the chest" };
  }

  const v = frontalView(h);
  const frontal = cfg.views.map(norm);
  if (v.view === undefined) {
    if (cfg.unknownView === "reject") return { eligible: false, reason: "view unknown (no ViewPosition, View Code Sequence, comment or orientation)" };
    return { eligible: true, reason: `${modality} ${bodyPart || "(chest by description)"} view unknown (accepted by policy)` };
  }
  if (v.view === "FRONTAL" || frontal.includes(v.view)) return { eligible: true, reason: `${modality} ${bodyPart || "chest"} ${v.view} (${v.source})`, view: v.view };
  return { eligible: false, reason: `view ${v.value} (${v.source}) is not ${cfg.views.join("/")}` };
}

/**
 * Series selection of a study: each series is eligible when at least one of its images is; the
 * pipeline reads one image, preferring PA over AP over other frontal, then the lowest Instance Number.
 */
export function selectStudy<T extends SelectableInstance>(instances: T[], cfg: SelectionConfig, ownOutputUids: ReadonlySet<string> = new Set()): StudySelection<T> {
  const bySeries = new Map<string, T[]>();
  for (const i of instances) bySeries.set(i.seriesInstanceUid, [...(bySeries.get(i.seriesInstanceUid) ?? []), i]);
  const series: SeriesDecision[] = [];
  const candidates: { inst: T; view?: string }[] = [];
  for (const [seriesUid, list] of bySeries) {
    const decisions = list.map((inst) => ({ inst, d: judgeInstance(inst, cfg, ownOutputUids) }));
    const ok = decisions.filter((x) => x.d.eligible);
    if (ok.length) {
      series.push({ seriesInstanceUid: seriesUid, eligible: true, reason: ok[0]!.d.reason });
      candidates.push(...ok.map((x) => ({ inst: x.inst, view: x.d.view })));
    } else {
      const reasons = [...new Set(decisions.map((x) => x.d.reason))];
      series.push({ seriesInstanceUid: seriesUid, eligible: false, reason: reasons.join("; ") });
    }
  }
  const rank = (v?: string) => (v === "PA" ? 0 : v === "AP" ? 1 : 2);
  candidates.sort((a, b) => rank(a.view) - rank(b.view) || (a.inst.header.instanceNumber ?? 1e9) - (b.inst.header.instanceNumber ?? 1e9) || a.inst.sopInstanceUid.localeCompare(b.inst.sopInstanceUid));
  if (candidates.length) return { series, chosen: candidates[0]!.inst };
  return { series, reason: `no eligible series: ${series.map((s) => s.reason).join(" | ")}` };
}
