import { randomUUID } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { dcmjs } from "./dcmjs.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN } from "./read.ts";
import { deriveUid } from "./uid.ts";

/** The cxr-triage release (package.json), named in meta headers and in Software Versions. */
export const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

/**
 * Identifies this writer in every file's meta header (PS3.7 D.3.3.2). Derived from the product name
 * and version, so it is the same for every file one release writes and changes with the release.
 */
export const IMPLEMENTATION_CLASS_UID = deriveUid("cxr-triage", "implementation-class", PACKAGE_VERSION);
/** SH, at most 16 characters. */
export const IMPLEMENTATION_VERSION_NAME = `CXR_TRIAGE_${PACKAGE_VERSION}`.slice(0, 16);

export class DicomWriteError extends Error {
  constructor(readonly what: string, reason: string) {
    super(`cannot write DICOM ${what}: ${reason}`);
    this.name = "DicomWriteError";
  }
}

/**
 * A naturalized dataset (dcmjs keywords) as a Part 10 file in memory: 128-byte preamble, "DICM",
 * group 0002 with its group length, and the dataset in Explicit VR Little Endian. Group 0002
 * attributes and dcmjs bookkeeping keys in `dataset` are ignored: the meta header is built here from
 * the dataset's own SOP Class/Instance UIDs, so the two can never disagree.
 */
export function toPart10Buffer(dataset: Record<string, unknown>): Buffer {
  const sopClassUid = dataset.SOPClassUID;
  const sopInstanceUid = dataset.SOPInstanceUID;
  const what = typeof sopInstanceUid === "string" ? `instance ${sopInstanceUid}` : "dataset";
  if (typeof sopClassUid !== "string" || !sopClassUid) throw new DicomWriteError(what, "SOPClassUID is missing");
  if (typeof sopInstanceUid !== "string" || !sopInstanceUid) throw new DicomWriteError(what, "SOPInstanceUID is missing");

  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(dataset)) {
    // _vrMap tells dcmjs the VR of "OB or OW" attributes such as Pixel Data; other _ keys are dcmjs bookkeeping.
    if ((key.startsWith("_") && key !== "_vrMap") || value === undefined || key.startsWith("FileMetaInformation")) continue;
    if (/^(MediaStorage|TransferSyntax|Implementation|SourceApplicationEntity)/.test(key)) continue;
    body[key] = value;
  }
  // dcmjs encodes every text value as UTF-8, so the declared character set follows the content:
  // ISO_IR 192 when any text is outside ASCII, the default repertoire (no attribute) otherwise.
  delete body.SpecificCharacterSet;
  if (hasNonAscii(body)) body.SpecificCharacterSet = "ISO_IR 192";
  const meta = dcmjs.data.DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUid,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  });
  const file = new dcmjs.data.DicomDict(meta);
  try {
    file.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(body);
  } catch (err) {
    throw new DicomWriteError(what, `dataset cannot be encoded (${(err as Error).message})`);
  }
  // fragmentMultiframe: false keeps native (uncompressed) Pixel Data as one value.
  return Buffer.from(file.write({ fragmentMultiframe: false }));
}

function hasNonAscii(value: unknown): boolean {
  if (typeof value === "string") return /[^\x00-\x7f]/.test(value);
  if (Array.isArray(value)) return value.some(hasNonAscii);
  if (value && typeof value === "object" && !(value instanceof ArrayBuffer) && !ArrayBuffer.isView(value)) {
    return Object.entries(value).some(([k, v]) => k !== "_vrMap" && hasNonAscii(v));
  }
  return false;
}

/**
 * Writes `dataset` as a Part 10 file at `path`: written to a temporary file in the same folder,
 * fsync'ed, then renamed, so a reader (or a crash) never sees half a file.
 */
export function writePart10(dataset: Record<string, unknown>, path: string): void {
  const bytes = toPart10Buffer(dataset);
  const tmp = join(dirname(path), `.${randomUUID()}.tmp.dcm`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "w");
    writeSync(fd, bytes);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new DicomWriteError(`file ${path}`, (err as Error).message);
  }
}
