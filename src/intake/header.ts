import type { InstanceHeader, StudyIdentification } from "../store/types.ts";

/** What intake keeps from a received instance's header (naturalized by dcmjs). */
export interface ReceivedHeader extends StudyIdentification {
  sopInstanceUid?: string;
  sopClassUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  header: InstanceHeader;
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.length ? str(v[0]) : undefined;
  if (typeof v === "object") {
    // dcmjs PN: { Alphabetic, Ideographic, Phonetic }, written back in DICOM's own form with every
    // component group ("Yamada^Tarou=山田^太郎=やまだ^たろう"; trailing empty groups dropped).
    const pn = v as { Alphabetic?: unknown; Ideographic?: unknown; Phonetic?: unknown };
    const groups = [pn.Alphabetic, pn.Ideographic, pn.Phonetic].map((g) => (typeof g === "string" ? g.replace(/\0/g, "").trim() : ""));
    const s = groups.join("=").replace(/=+$/, "");
    return s === "" ? undefined : s;
  }
  const s = String(v).replace(/\0/g, "").trim();
  return s === "" ? undefined : s;
}

function strs(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  const arr = Array.isArray(v) ? v : String(v).split("\\");
  const out = arr.map((x) => str(x)).filter((x): x is string => !!x);
  return out.length ? out : undefined;
}

function firstItem(v: unknown): Record<string, unknown> | undefined {
  if (Array.isArray(v)) return (v[0] as Record<string, unknown> | undefined) ?? undefined;
  if (v && typeof v === "object") return v as Record<string, unknown>;
  return undefined;
}

export function extractHeader(ds: Record<string, unknown>): ReceivedHeader {
  const viewCode = firstItem(ds.ViewCodeSequence);
  const contributing = Array.isArray(ds.ContributingEquipmentSequence) ? (ds.ContributingEquipmentSequence as Record<string, unknown>[]) : firstItem(ds.ContributingEquipmentSequence) ? [firstItem(ds.ContributingEquipmentSequence)!] : [];
  const instanceNumber = Number(str(ds.InstanceNumber));
  const header: InstanceHeader = {
    modality: str(ds.Modality),
    bodyPartExamined: str(ds.BodyPartExamined),
    viewPosition: str(ds.ViewPosition),
    patientPosition: str(ds.PatientPosition),
    viewCodeMeaning: viewCode ? str(viewCode.CodeMeaning) : undefined,
    viewCodeValue: viewCode ? str(viewCode.CodeValue) : undefined,
    imageComments: str(ds.ImageComments),
    patientOrientation: strs(ds.PatientOrientation)?.join("\\"),
    imageType: strs(ds.ImageType),
    manufacturer: str(ds.Manufacturer),
    seriesDescription: str(ds.SeriesDescription),
    studyDescription: str(ds.StudyDescription),
    protocolName: str(ds.ProtocolName),
    contributingManufacturers: contributing.map((c) => str(c.Manufacturer)).filter((x): x is string => !!x),
    instanceNumber: Number.isFinite(instanceNumber) ? instanceNumber : undefined,
  };
  for (const k of Object.keys(header) as (keyof InstanceHeader)[]) if (header[k] === undefined) delete header[k];
  return {
    sopInstanceUid: str(ds.SOPInstanceUID),
    sopClassUid: str(ds.SOPClassUID),
    studyInstanceUid: str(ds.StudyInstanceUID),
    seriesInstanceUid: str(ds.SeriesInstanceUID),
    patientName: str(ds.PatientName),
    patientId: str(ds.PatientID),
    patientBirthDate: str(ds.PatientBirthDate),
    patientSex: str(ds.PatientSex),
    accessionNumber: str(ds.AccessionNumber),
    studyDescription: str(ds.StudyDescription),
    header,
  };
}
