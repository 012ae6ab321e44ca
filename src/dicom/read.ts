import { readFileSync } from "node:fs";
import { inflateRawSync } from "node:zlib";
import { dcmjs, type DcmjsDict } from "./dcmjs.ts";
import { DicomReadError } from "./errors.ts";

export const IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2";
export const EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1";

/** How the bytes were framed on disk: a Part 10 file, or a bare dataset (ACR-NEMA style, no preamble/meta). */
export type DicomFileFormat = "part10" | "part10-without-preamble" | "bare-dataset";

export interface DicomFile {
  path: string;
  format: DicomFileFormat;
  transferSyntaxUid: string;
  /** File meta information (group 0002), naturalized; synthesized for bare datasets. */
  meta: Record<string, unknown>;
  /** The dataset, naturalized by dcmjs (keywords as keys). PixelData is absent when read with withPixelData=false. */
  dataset: Record<string, unknown>;
  /** The same dataset denaturalized (tag → {vr, Value}), for the pixel decoders (they need the raw VR of PixelData). */
  dict: DcmjsDict;
}

export interface ReadDicomOptions {
  /** Stop before (7FE0,0010) Pixel Data: for readers that need only the header (SR/SC, intake). Default true. */
  withPixelData?: boolean;
}

const VRS = new Set(
  "AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split(" "),
);

/** Reads a DICOM file from disk: Part 10, Part 10 missing its preamble, or an ACR-NEMA style bare dataset. */
export function readDicom(path: string, options: ReadDicomOptions = {}): DicomFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new DicomReadError(path, `cannot read file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseDicom(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path, options);
}

/** Parses DICOM bytes already in memory; `path` only names the source in errors. */
export function parseDicom(bytes: Uint8Array, path: string, options: ReadDicomOptions = {}): DicomFile {
  const { buffer, format } = framePart10(bytes, path);
  let file;
  try {
    file = dcmjs.data.DicomMessage.readFile(buffer, {
      ignoreErrors: true,
      untilTag: options.withPixelData === false ? "7FE00010" : null,
      includeUntilTagValue: false,
    });
  } catch (err) {
    // dcmjs's inflater fails obscurely on a cut deflated stream; zlib says what is wrong
    if (format === "part10" && metaNamesDeflate(new Uint8Array(buffer))) inflatedDataset(new Uint8Array(buffer), path);
    throw new DicomReadError(path, `not a readable DICOM dataset (${(err as Error).message})`);
  }
  // with untilTag dcmjs still lists (7FE0,0010), with a placeholder value; drop it so "no pixels" is visible
  if (options.withPixelData === false) delete file.dict["7FE00010"];
  const meta = dcmjs.data.DicomMetaDictionary.naturalizeDataset(file.meta);
  const transferSyntaxUid = typeof meta.TransferSyntaxUID === "string" ? meta.TransferSyntaxUID.replace(/\0/g, "").trim() : "";
  if (!transferSyntaxUid) throw new DicomReadError(path, "file meta information has no Transfer Syntax UID", { tag: "(0002,0010)" });
  let dataset: Record<string, unknown>;
  try {
    dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(file.dict);
  } catch (err) {
    throw new DicomReadError(path, `dataset cannot be interpreted (${(err as Error).message})`, { transferSyntaxUid });
  }
  const onDisk = transferSyntaxUid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN ? inflatedDataset(new Uint8Array(buffer), path) : bytes;
  checkPixelDataComplete(onDisk, file.dict, path, transferSyntaxUid);
  return { path, format, transferSyntaxUid, meta, dataset, dict: file.dict };
}

const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99";
const NATIVE_SYNTAXES = new Set([IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.1.2.2"]);

function metaNamesDeflate(part10: Uint8Array): boolean {
  const view = Buffer.from(part10.buffer, part10.byteOffset, part10.byteLength);
  if (view.length < 144) return false;
  const metaEnd = Math.min(view.length, 132 + 12 + view.readUInt32LE(132 + 8));
  return view.subarray(132, metaEnd).includes(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
}

/**
 * The dataset bytes of a deflated Part 10 file, inflated by zlib, which (unlike the inflater
 * inside dcmjs) fails on a truncated or corrupt stream instead of returning what it got.
 */
function inflatedDataset(part10: Uint8Array, path: string): Uint8Array {
  const view = Buffer.from(part10.buffer, part10.byteOffset, part10.byteLength);
  const metaEnd = 132 + 12 + view.readUInt32LE(132 + 8);
  try {
    return inflateRawSync(view.subarray(metaEnd));
  } catch (err) {
    throw new DicomReadError(path, `deflated dataset cannot be inflated (${(err as Error).message})`, { transferSyntaxUid: DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN });
  }
}

/**
 * dcmjs zero-fills a value that runs past the end of the file, so a truncated transfer would
 * decode to an image whose lower part is silently black. Every Pixel Data buffer (the native
 * value, or each encapsulated frame) must therefore be found, whole and in order, in the bytes on
 * disk; an encapsulated frame that dcmjs merged from several fragments (Basic Offset Table
 * present) is matched item by item. For a deflated file the bytes are the inflated dataset.
 */
function checkPixelDataComplete(bytes: Uint8Array, dict: DcmjsDict, path: string, transferSyntaxUid: string): void {
  const el = dict["7FE00010"];
  const value = el?.Value;
  if (!Array.isArray(value)) return;
  const file = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const encapsulated = value.length > 1 || !NATIVE_SYNTAXES.has(transferSyntaxUid);
  let from = 0;
  for (const [i, buf] of value.entries()) {
    if (!(buf instanceof ArrayBuffer) || buf.byteLength === 0) continue;
    const part = Buffer.from(buf);
    const end = encapsulated ? findItems(file, part, from) : findWhole(file, part, from);
    if (end < 0) {
      const what = value.length > 1 ? `item ${i + 1} of ${value.length}` : "the value";
      throw new DicomReadError(path, `Pixel Data is truncated: ${what} (${part.length} bytes) is not complete in the file (${file.length} bytes)`, {
        tag: "(7FE0,0010)",
        transferSyntaxUid,
      });
    }
    from = end;
  }
}

/** End offset of `part` found whole within `file` at or after `from`, or -1. */
function findWhole(file: Buffer, part: Buffer, from: number): number {
  const probe = part.subarray(0, Math.min(64, part.length));
  for (let at = file.indexOf(probe, from); at >= 0 && at + part.length <= file.length; at = file.indexOf(probe, at + 1)) {
    if (file.compare(part, 0, part.length, at, at + part.length) === 0) return at + part.length;
  }
  return -1;
}

const ITEM_TAG = Buffer.from([0xfe, 0xff, 0x00, 0xe0]);

/** Like findWhole, for `part` spread over consecutive (FFFE,E000) items; returns the end of the last item used. */
function findItems(file: Buffer, part: Buffer, from: number): number {
  const probe = part.subarray(0, Math.min(64, part.length));
  for (let at = file.indexOf(probe, Math.max(from, 8)); at >= 0; at = file.indexOf(probe, at + 1)) {
    let pos = at;
    let off = 0;
    while (off < part.length && pos >= 8 && file.compare(ITEM_TAG, 0, 4, pos - 8, pos - 4) === 0) {
      const len = Math.min(file.readUInt32LE(pos - 4), part.length - off);
      if (pos + len > file.length || file.compare(part, off, off + len, pos, pos + len) !== 0) break;
      off += len;
      pos += len;
      if (off < part.length) pos += 8; // the next item's header
    }
    if (off === part.length) return pos;
  }
  return -1;
}

/**
 * dcmjs reads only Part 10 ("DICM" at offset 128). Files from older systems lack the preamble or
 * the whole meta header; for those we put a synthetic preamble (and, for a bare dataset, a meta
 * header naming the transfer syntax guessed from the first element) in front, which leaves the
 * dataset bytes untouched.
 */
function framePart10(bytes: Uint8Array, path: string): { buffer: ArrayBuffer; format: DicomFileFormat } {
  const ascii = (at: number, n: number) => String.fromCharCode(...bytes.subarray(at, at + n));
  if (bytes.length >= 132 && ascii(128, 4) === "DICM") return { buffer: copyOut(bytes), format: "part10" };
  if (bytes.length >= 4 && ascii(0, 4) === "DICM") {
    return { buffer: concat([new Uint8Array(128), bytes]), format: "part10-without-preamble" };
  }
  if (bytes.length < 8) throw new DicomReadError(path, `too short to be DICOM (${bytes.length} bytes)`);
  const group = bytes[0]! | (bytes[1]! << 8);
  const element = bytes[2]! | (bytes[3]! << 8);
  // A bare little-endian dataset starts with a low, even group (0000 command group length, 0002, 0008...).
  if (group % 2 !== 0 || group > 0x0028) {
    throw new DicomReadError(path, `not DICOM: no "DICM" at offset 128 and first bytes are not a dataset element (${hex4(group)},${hex4(element)})`);
  }
  const explicit = VRS.has(ascii(4, 2));
  if (group === 0x0002) {
    // meta header present but preamble missing: Part 10 without the 132-byte lead-in
    return { buffer: concat([new Uint8Array(128), new TextEncoder().encode("DICM"), bytes]), format: "part10-without-preamble" };
  }
  const meta = syntheticMeta(explicit ? EXPLICIT_VR_LITTLE_ENDIAN : IMPLICIT_VR_LITTLE_ENDIAN);
  return { buffer: concat([new Uint8Array(128), new TextEncoder().encode("DICM"), meta, bytes]), format: "bare-dataset" };
}

/** (0002,0000) group length + (0002,0010) Transfer Syntax UID, explicit VR little endian. */
function syntheticMeta(transferSyntaxUid: string): Uint8Array {
  const uid = transferSyntaxUid.length % 2 ? `${transferSyntaxUid}\0` : transferSyntaxUid;
  const tsElement = new Uint8Array(8 + uid.length);
  const v = new DataView(tsElement.buffer);
  v.setUint16(0, 0x0002, true);
  v.setUint16(2, 0x0010, true);
  tsElement.set([0x55, 0x49], 4); // "UI"
  v.setUint16(6, uid.length, true);
  tsElement.set(new TextEncoder().encode(uid), 8);
  const groupLength = new Uint8Array(12);
  const g = new DataView(groupLength.buffer);
  g.setUint16(0, 0x0002, true);
  g.setUint16(2, 0x0000, true);
  groupLength.set([0x55, 0x4c], 4); // "UL"
  g.setUint16(6, 4, true);
  g.setUint32(8, tsElement.length, true);
  return new Uint8Array(concat([groupLength, tsElement]));
}

function concat(parts: Uint8Array[]): ArrayBuffer {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out.buffer;
}

function copyOut(bytes: Uint8Array): ArrayBuffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer
    ? bytes.buffer
    : bytes.slice().buffer;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, "0");
}
