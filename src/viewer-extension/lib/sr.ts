/**
 * Reads the triage findings back from a TID 1500 Structured Report in DICOM JSON (as WADO-RS
 * metadata returns it): the fallback when the plugin's API is not reachable but its SR is in the PACS.
 *
 * A finding is a Measurement Group holding a CODE item "Finding" (DCM 121071), a NUM item whose
 * concept names a probability (DCM 122157 "Probability", as src/results/sr writes it) and, when
 * present, a CODE "Presence" (SCT 705057003) = Present/Absent at the model's operating point, or a
 * NUM naming a threshold. The model is the Device Observer Name (DCM 121013, "<name> <version>").
 *
 * Other vendors' AI results are TID 1500 SRs too, so the fallback must only show an SR this plugin
 * wrote: src/results writes Manufacturer (and Contributing Equipment) from the model card, by default
 * "cxr-triage", and always names itself in Software Versions ("cxr-triage <version>"); the Device
 * Observer UID (DCM 121012) is the model card's Device UID.
 */
import { FINDING_CODES, NIH_LABELS } from "../../model/labels.ts";
import { TAG, seq, str, type DicomJson } from "./dicomweb.ts";
import type { TriageFinding, TriageModel } from "./types.ts";

function conceptMeaning(item: DicomJson): string {
  return str(seq(item, TAG.ConceptNameCodeSequence)[0], TAG.CodeMeaning) ?? "";
}

function conceptValue(item: DicomJson): string {
  return str(seq(item, TAG.ConceptNameCodeSequence)[0], TAG.CodeValue) ?? "";
}

function numeric(item: DicomJson): { value: number; unit: string } | undefined {
  const mv = seq(item, TAG.MeasuredValueSequence)[0];
  const v = Number(str(mv, TAG.NumericValue));
  if (!mv || !Number.isFinite(v)) return undefined;
  return { value: v, unit: str(seq(mv, TAG.MeasurementUnitsCodeSequence)[0], TAG.CodeValue) ?? "" };
}

/** Probabilities may be stored as a fraction (UCUM "1") or as a percentage (UCUM "%"). */
function asFraction(n: { value: number; unit: string }): number {
  return n.unit === "%" ? n.value / 100 : n.value;
}

/**
 * The model card's label of a finding code: by code (FINDING_CODES, e.g. SCT 60046008 → "Effusion"),
 * else by meaning ("Pleural thickening" → "Pleural_Thickening"), else the code meaning itself.
 */
export function labelFromCode(value: string | undefined, scheme: string | undefined, meaning: string): string {
  const byCode = NIH_LABELS.find((l) => FINDING_CODES[l].value === value && FINDING_CODES[l].scheme === scheme);
  if (byCode) return byCode;
  const key = meaning.toLowerCase().replace(/[_\s]+/g, " ").trim();
  return NIH_LABELS.find((l) => l.toLowerCase().replace(/_/g, " ") === key) ?? meaning;
}

/** The finding a Measurement Group is about: the label of its CODE "Finding" (DCM 121071) item. */
export function groupFindingLabel(group: DicomJson): string | undefined {
  const item = seq(group, TAG.ContentSequence).find((i) => str(i, TAG.ValueType) === "CODE" && (conceptValue(i) === "121071" || /^finding$/i.test(conceptMeaning(i))));
  const code = item && seq(item, TAG.ConceptCodeSequence)[0];
  const meaning = str(code, TAG.CodeMeaning);
  return meaning ? labelFromCode(str(code, TAG.CodeValue), str(code, TAG.CodingSchemeDesignator), meaning) : undefined;
}

export interface SrFindings {
  findings: TriageFinding[];
  model?: TriageModel;
  /** The image the findings are about: the first IMAGE of the Image Library (DCM 111028). */
  sourceSopInstanceUid?: string;
}

/** Manufacturer that src/results writes unless the model card names another. */
export const PLUGIN_MANUFACTURER = "cxr-triage";
/** src/results/equipment.ts softwareVersions(): the plugin's own entry is "cxr-triage <package version>". */
const PLUGIN_SOFTWARE = /^cxr-triage\s/;

const EQUIPMENT_TAG = {
  Manufacturer: "00080070",
  ManufacturerModelName: "00081090",
  SoftwareVersions: "00181020",
  ContributingEquipmentSequence: "0018A001",
  ContentDate: "00080023",
  ContentTime: "00080033",
  UID: "0040A124",
} as const;

function values(ds: DicomJson | undefined, tag: string): string[] {
  return ((ds?.[tag]?.Value ?? []) as unknown[]).filter((v) => v !== null && v !== undefined).map(String);
}

/** Who wrote an SR and when: General Equipment, Contributing Equipment and the Device Observer context. */
export interface SrDevice {
  /** Manufacturer (0008,0070) of the SR, else of its Contributing Equipment. */
  manufacturer?: string;
  manufacturerModelName?: string;
  softwareVersions: string[];
  /** Device Observer UID (DCM 121012) of the root's observer context. */
  deviceObserverUid?: string;
  /** Device Observer Name (DCM 121013). */
  deviceObserverName?: string;
  /** Content Date/Time as "YYYY-MM-DD HH:MM:SS" (as much as the SR gives). */
  contentDateTime?: string;
}

export function srDevice(sr: DicomJson): SrDevice {
  const contributing = seq(sr, EQUIPMENT_TAG.ContributingEquipmentSequence);
  const manufacturer = str(sr, EQUIPMENT_TAG.Manufacturer) ?? contributing.map((e) => str(e, EQUIPMENT_TAG.Manufacturer)).find((m) => m);
  const model = str(sr, EQUIPMENT_TAG.ManufacturerModelName) ?? contributing.map((e) => str(e, EQUIPMENT_TAG.ManufacturerModelName)).find((m) => m);
  const softwareVersions = [...values(sr, EQUIPMENT_TAG.SoftwareVersions), ...contributing.flatMap((e) => values(e, EQUIPMENT_TAG.SoftwareVersions))];
  let deviceObserverUid: string | undefined;
  let deviceObserverName: string | undefined;
  // The observer context of the whole report sits directly in the root's content.
  for (const item of seq(sr, TAG.ContentSequence)) {
    if (conceptValue(item) === "121012") deviceObserverUid ??= str(item, EQUIPMENT_TAG.UID);
    if (conceptValue(item) === "121013") deviceObserverName ??= str(item, TAG.TextValue);
  }
  const d = str(sr, EQUIPMENT_TAG.ContentDate);
  const t = str(sr, EQUIPMENT_TAG.ContentTime);
  const date = d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : d;
  const time = t ? (t.match(/^(\d{2})(\d{2})?(\d{2})?/)?.slice(1).filter(Boolean).join(":") ?? t) : undefined;
  const contentDateTime = [date, time].filter(Boolean).join(" ") || undefined;
  return {
    ...(manufacturer ? { manufacturer } : {}),
    ...(model ? { manufacturerModelName: model } : {}),
    softwareVersions,
    ...(deviceObserverUid ? { deviceObserverUid } : {}),
    ...(deviceObserverName ? { deviceObserverName } : {}),
    ...(contentDateTime ? { contentDateTime } : {}),
  };
}

/** What the plugin's API said about its SR, when it said anything: narrows the SRs accepted as the plugin's. */
export interface ExpectedSr {
  /** The model card's Device UID (the plugin's study JSON `model.deviceUid`). */
  deviceUid?: string;
  /** The SR the plugin exported (the study JSON `outputs.sr`). */
  srSopInstanceUid?: string;
}

/**
 * Whether this plugin wrote the SR: its Manufacturer is the plugin's or its Software Versions name
 * cxr-triage (the card may name another manufacturer; the software entry is written regardless),
 * and, when the plugin's study JSON named a Device UID, its Device Observer UID is that one.
 */
export function isPluginSr(sr: DicomJson, expected: ExpectedSr = {}): boolean {
  const device = srDevice(sr);
  const ours = device.manufacturer === PLUGIN_MANUFACTURER || device.softwareVersions.some((v) => PLUGIN_SOFTWARE.test(v));
  if (!ours) return false;
  return !expected.deviceUid || device.deviceObserverUid === expected.deviceUid;
}

/** "cxr-triage demo 1.0 (cxr-triage), content date 2026-11-27 11:10:05" for the reader. */
export function describeSrDevice(device: SrDevice): string {
  const name = device.deviceObserverName ?? device.manufacturerModelName ?? "unnamed device";
  const who = device.manufacturer ? `${name} (${device.manufacturer})` : name;
  return `${who}, content date ${device.contentDateTime ?? "not stated"}`;
}

export function findingsFromSr(sr: DicomJson): SrFindings {
  const findings = new Map<string, TriageFinding>();
  let observer: string | undefined;
  let sourceSopInstanceUid: string | undefined;

  const visit = (container: DicomJson, inImageLibrary: boolean) => {
    const items = seq(container, TAG.ContentSequence);
    let label: string | undefined;
    let probability: number | undefined;
    let threshold: number | undefined;
    let present: boolean | undefined;
    for (const item of items) {
      const vt = str(item, TAG.ValueType);
      const meaning = conceptMeaning(item);
      if (vt === "CODE" && (conceptValue(item) === "121071" || /^finding$/i.test(meaning))) {
        const code = seq(item, TAG.ConceptCodeSequence)[0];
        const meaning = str(code, TAG.CodeMeaning);
        if (meaning) label = labelFromCode(str(code, TAG.CodeValue), str(code, TAG.CodingSchemeDesignator), meaning);
      } else if (vt === "CODE" && (conceptValue(item) === "705057003" || /^presence$/i.test(meaning))) {
        const value = str(seq(item, TAG.ConceptCodeSequence)[0], TAG.CodeMeaning) ?? "";
        present = /^present$/i.test(value) ? true : /^absent$/i.test(value) ? false : undefined;
      } else if (vt === "NUM") {
        const n = numeric(item);
        if (n && /probab|likelihood/i.test(meaning)) probability = asFraction(n);
        else if (n && /threshold|operating point/i.test(meaning)) threshold = asFraction(n);
      } else if (vt === "TEXT") {
        if (conceptValue(item) === "121013" || /^device observer name$/i.test(meaning)) observer ??= str(item, TAG.TextValue);
      }
      if (vt === "IMAGE" && inImageLibrary) sourceSopInstanceUid ??= str(seq(item, "00081199")[0], "00081155");
      if (seq(item, TAG.ContentSequence).length) visit(item, inImageLibrary || conceptValue(item) === "111028");
    }
    if (label && probability !== undefined) {
      findings.set(label, {
        label,
        probability,
        ...(threshold !== undefined ? { threshold } : {}),
        ...(present !== undefined ? { positive: present } : threshold !== undefined ? { positive: probability >= threshold } : {}),
      });
    }
  };
  visit(sr, false);
  // "<name> <version>": the version is the last word.
  const model = observer ? { name: observer.replace(/\s+\S+$/, "") || observer, version: /\s(\S+)$/.exec(observer)?.[1] ?? "unknown" } : undefined;
  return { findings: [...findings.values()], ...(model ? { model } : {}), ...(sourceSopInstanceUid ? { sourceSopInstanceUid } : {}) };
}
