import { isValidDicomDate } from "../dicom/date.ts";
import { isValidUid } from "../dicom/uid.ts";

/**
 * What the result objects take over from the source image: the Patient, General Study and Patient
 * Study attributes (so the SR/SC file into the same patient and study), validated value by value.
 *
 * Real PACS data is often non-conformant; an invalid value is never copied blindly:
 * - a Type 2 attribute (Patient's Name, Patient ID, Birth Date, Sex, Study Date/Time, Referring
 *   Physician, Study ID, Accession Number) whose source value is missing or invalid is written empty,
 *   as PS3.5 7.4 allows for Type 2;
 * - a Type 3 attribute (Study Description, Issuer of Patient ID, Patient's Age/Size/Weight) whose value is
 *   invalid is left out;
 * - Patient's Age (AS, "nnnD|W|M|Y"): a bare number such as "81" is ambiguous (days? years?). It is
 *   repaired to "081Y" only when Patient's Birth Date and Study Date are both valid and give exactly that
 *   many years; otherwise it is left out;
 * - the Study Instance UID is Type 1 and must be valid, or no result object can be made (error).
 * Every repair or omission is returned as a note, so the caller can log it.
 */
export class ResultInputError extends Error {
  constructor(readonly what: string, reason: string) {
    super(`${what}: ${reason}`);
    this.name = "ResultInputError";
  }
}

export interface SourceReference {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface CopiedAttributes {
  /** Naturalized (dcmjs keyword) attributes to put into each result object. */
  attributes: Record<string, unknown>;
  notes: string[];
}

/** The Type 1 identity of the source instance; throws naming the instance when one is missing or invalid. */
export function sourceReference(source: Record<string, unknown>, what: string): SourceReference {
  const uid = (keyword: string): string => {
    const v = source[keyword];
    if (typeof v !== "string" || !isValidUid(v)) {
      throw new ResultInputError(what, `source ${keyword} is ${v === undefined ? "missing" : `invalid (${JSON.stringify(v)})`}; result objects must reference a valid source instance`);
    }
    return v;
  };
  return {
    studyInstanceUid: uid("StudyInstanceUID"),
    seriesInstanceUid: uid("SeriesInstanceUID"),
    sopClassUid: uid("SOPClassUID"),
    sopInstanceUid: uid("SOPInstanceUID"),
  };
}

const CONTROL = /[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f]/; // ESC (0x1b) is allowed for ISO 2022 text; tab is not in PN/LO/SH either but harmless

function text(value: unknown): string | undefined {
  if (typeof value === "string") return value.trim();
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (Array.isArray(value) && value.length === 1) return text(value[0]);
  return undefined;
}

/** LO/SH: at most `max` characters, no backslash (it separates values), no control characters. */
function shortString(value: unknown, max: number): string | undefined {
  const s = text(value);
  if (s === undefined || s.length > max || s.includes("\\") || CONTROL.test(s)) return undefined;
  return s;
}

const TIME = /^([01]\d|2[0-3])([0-5]\d([0-5]\d(\.\d{1,6})?)?)?$/;

/** PN as dcmjs gives it: [{ Alphabetic, Ideographic?, Phonetic? }]; each group at most 64 characters, at most 5 components. */
function personName(value: unknown): { Alphabetic?: string; Ideographic?: string; Phonetic?: string }[] | undefined {
  if (!Array.isArray(value) || value.length !== 1) return undefined;
  const name = value[0] as Record<string, unknown> | string;
  const groups = typeof name === "string" ? { Alphabetic: name } : name;
  const out: Record<string, string> = {};
  for (const key of ["Alphabetic", "Ideographic", "Phonetic"] as const) {
    const g = groups[key];
    if (g === undefined || g === "") continue;
    if (typeof g !== "string" || g.length > 64 || g.split("^").length > 5 || g.includes("\\") || g.includes("=") || CONTROL.test(g)) return undefined;
    out[key] = g;
  }
  return Object.keys(out).length ? [out] : undefined;
}

function yearsBetween(birth: string, at: string): number {
  const [by, bm, bd] = [Number(birth.slice(0, 4)), Number(birth.slice(4, 6)), Number(birth.slice(6, 8))];
  const [ay, am, ad] = [Number(at.slice(0, 4)), Number(at.slice(4, 6)), Number(at.slice(6, 8))];
  return ay - by - (am < bm || (am === bm && ad < bd) ? 1 : 0);
}

/** Patient's Age per the rule in the module comment; `undefined` means "leave out". */
export function validPatientAge(value: unknown, birthDate: string | undefined, studyDate: string | undefined): { age?: string; note?: string } {
  const s = text(value);
  if (s === undefined || s === "") return {};
  if (/^\d{3}[DWMY]$/.test(s)) return { age: s };
  const bare = /^\d{1,3}$/.exec(s);
  if (bare && birthDate && studyDate && isValidDicomDate(birthDate) && isValidDicomDate(studyDate) && yearsBetween(birthDate, studyDate) === Number(s)) {
    const age = `${s.padStart(3, "0")}Y`;
    return { age, note: `Patient's Age "${s}" repaired to "${age}" (AS needs nnnD/W/M/Y; birth and study dates confirm years)` };
  }
  return { note: `Patient's Age "${s}" left out: not a valid AS value (nnnD/W/M/Y)${bare ? " and the unit cannot be confirmed from birth and study dates" : ""}` };
}

/**
 * The Patient, General Study and Patient Study attributes of `source`, validated per the rules above.
 * `what` names the source (file or instance) in notes and errors.
 */
export function copyPatientAndStudy(source: Record<string, unknown>, what: string): CopiedAttributes {
  const notes: string[] = [];
  const attributes: Record<string, unknown> = {};
  const type2 = (keyword: string, name: string, valid: unknown) => {
    const raw = source[keyword];
    const present = raw !== undefined && raw !== "" && !(Array.isArray(raw) && raw.length === 0);
    if (valid !== undefined) {
      attributes[keyword] = valid;
    } else {
      attributes[keyword] = keyword.endsWith("Name") ? [] : "";
      notes.push(present ? `${name} ${JSON.stringify(raw)} is invalid; written empty (Type 2)` : `${name} missing; written empty (Type 2)`);
    }
  };
  const type3 = (keyword: string, name: string, valid: unknown) => {
    const raw = source[keyword];
    if (valid !== undefined) attributes[keyword] = valid;
    else if (raw !== undefined && raw !== "") notes.push(`${name} ${JSON.stringify(raw)} is invalid; left out (Type 3)`);
  };

  const studyDate = text(source.StudyDate);
  const birthDate = text(source.PatientBirthDate);
  type2("PatientName", "Patient's Name", personName(source.PatientName));
  type2("PatientID", "Patient ID", shortString(source.PatientID, 64));
  type3("IssuerOfPatientID", "Issuer of Patient ID", shortString(source.IssuerOfPatientID, 64) || undefined);
  type2("PatientBirthDate", "Patient's Birth Date", birthDate && isValidDicomDate(birthDate) ? birthDate : undefined);
  const sex = text(source.PatientSex);
  type2("PatientSex", "Patient's Sex", sex && ["M", "F", "O"].includes(sex) ? sex : undefined);

  type2("StudyDate", "Study Date", studyDate && isValidDicomDate(studyDate) ? studyDate : undefined);
  const studyTime = text(source.StudyTime);
  type2("StudyTime", "Study Time", studyTime && TIME.test(studyTime) ? studyTime : undefined);
  type2("ReferringPhysicianName", "Referring Physician's Name", personName(source.ReferringPhysicianName));
  type2("StudyID", "Study ID", shortString(source.StudyID, 16) || undefined);
  type2("AccessionNumber", "Accession Number", shortString(source.AccessionNumber, 16) || undefined);
  type3("StudyDescription", "Study Description", shortString(source.StudyDescription, 64) || undefined);

  const age = validPatientAge(source.PatientAge, birthDate, studyDate);
  if (age.age) attributes.PatientAge = age.age;
  if (age.note) notes.push(age.note);
  for (const [keyword, name] of [["PatientSize", "Patient's Size"], ["PatientWeight", "Patient's Weight"]] as const) {
    const s = text(source[keyword]);
    type3(keyword, name, s && s.length <= 16 && /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) && Number(s) > 0 ? s : undefined);
  }
  return { attributes, notes: notes.map((n) => `${what}: ${n}`) };
}
