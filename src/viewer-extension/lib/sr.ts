/**
 * Reads the triage findings back from a TID 1500 Structured Report in DICOM JSON (as WADO-RS
 * metadata returns it): the fallback when the plugin's API is not reachable but its SR is in the PACS.
 *
 * A finding is a Measurement Group holding a CODE item "Finding" (DCM 121071), a NUM item whose
 * concept names a probability (DCM 122157 "Probability", as src/results/sr writes it) and, when
 * present, a CODE "Presence" (SCT 705057003) = Present/Absent at the model's operating point, or a
 * NUM naming a threshold. The model is the Device Observer Name (DCM 121013, "<name> <version>").
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

export interface SrFindings {
  findings: TriageFinding[];
  model?: TriageModel;
  /** The image the findings are about: the first IMAGE of the Image Library (DCM 111028). */
  sourceSopInstanceUid?: string;
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
