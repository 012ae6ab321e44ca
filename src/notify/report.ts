import type { PriorityConfig } from "../config/worklist.ts";
import type { CodedConcept } from "../model/card.ts";
import type { StudyRecord } from "../store/types.ts";
import { judgeFindings, prioritize, type PriorityResult } from "../worklist/priority.ts";

/** Said with every notification, whatever the protocol: the device triages, it does not diagnose. */
export const PRIORITIZATION_STATEMENT = "For prioritization only — not for diagnostic use";

/** The study the report is about, as every notification names it (LOINC; the same in HL7 OBR-4 and FHIR DiagnosticReport.code). */
export const CHEST_XRAY_STUDY_CODE = { system: "http://loinc.org", code: "36643-5", display: "XR Chest 2 Views" } as const;

export interface ReportFinding {
  label: string;
  /** The coded concept of the SR's Finding (src/model/labels.ts via the model card). */
  code: CodedConcept;
  probability: number;
  /** The operating point in force (configured, else the card's) and whether the probability reaches it. */
  threshold: number;
  positive: boolean;
}

/** What every notification of a study's current results says: one value, computed once, for HL7, FHIR and webhooks. */
export interface TriageReport {
  studyInstanceUid: string;
  accessionNumber?: string;
  patientName?: string;
  patientId?: string;
  /** DICOM DA (YYYYMMDD) and CS (M, F, O) from the study's patient module. */
  patientBirthDate?: string;
  patientSex?: string;
  studyDescription?: string;
  priority: PriorityResult;
  findings: ReportFinding[];
  model: NonNullable<StudyRecord["model"]>;
  /** When the results were recorded (the study reached "done"). */
  resultsAt: string;
}

/** The report of a study with results; throws (naming the study) when it has none. */
export function triageReport(rec: StudyRecord, priority: PriorityConfig): TriageReport {
  if (!rec.findings?.length || !rec.model) throw new Error(`study ${rec.studyInstanceUid}: no results to notify (state ${rec.state})`);
  const judged = judgeFindings(rec, priority);
  const doneAt = [...rec.history].reverse().find((h) => h.state === "done")?.at ?? rec.updatedAt;
  return {
    studyInstanceUid: rec.studyInstanceUid,
    ...(rec.accessionNumber && { accessionNumber: rec.accessionNumber }),
    ...(rec.patientName && { patientName: rec.patientName }),
    ...(rec.patientId && { patientId: rec.patientId }),
    ...(rec.patientBirthDate && { patientBirthDate: rec.patientBirthDate }),
    ...(rec.patientSex && { patientSex: rec.patientSex }),
    ...(rec.studyDescription && { studyDescription: rec.studyDescription }),
    // The priority of the results, whatever state the study is in now (it may be "exported" already).
    priority: prioritize({ ...rec, state: "done" }, priority),
    findings: rec.findings.map((f, i) => ({ label: f.label, code: f.code, probability: f.probability, threshold: judged[i]!.threshold, positive: judged[i]!.positive })),
    model: rec.model,
    resultsAt: doneAt,
  };
}

/** The components of a DICOM PN's alphabetic group (Family^Given^Middle^Prefix^Suffix), as HL7 and FHIR map them. */
export interface PersonNameComponents { family?: string; given?: string; middle?: string; prefix?: string; suffix?: string }

export function personNameComponents(pn: string): PersonNameComponents {
  const [family, given, middle, prefix, suffix] = (pn.split("=")[0] ?? "").split("^");
  return { family, given, middle, prefix, suffix };
}
