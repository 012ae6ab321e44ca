import { execFileSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readDicom } from "../../src/dicom/read.ts";
import { dcmjs } from "../../src/dicom/dcmjs.ts";
import { newUid } from "../../src/dicom/uid.ts";
import { SHARED_DICOM } from "../helpers/shared-data.ts";

/** A copy of `src` as a new study (new Study/Series/SOP Instance UIDs), dcmtk dcmodify; keeps the transfer syntax. */
export function asNewStudy(src: string, out: string): string {
  copyFileSync(src, out);
  execFileSync("dcmodify", ["-nb", "-gst", "-gse", "-gin", out]);
  return out;
}

/** JPEG-LS (dcmcjpls), JPEG 2000 (gdcmconv --j2k) and RLE (dcmcrle) versions of a chest film, each its own study. */
export function compressedVariants(dir: string, base = "test1.dcm"): { name: string; path: string; transferSyntaxUid: string }[] {
  const src = join(SHARED_DICOM, base);
  const jls = join(dir, "chest-jpegls.dcm");
  execFileSync("dcmcjpls", [src, jls]);
  const j2k = join(dir, "chest-j2k.dcm");
  // gdcmconv keeps implicit-VR elements as UN; make the source explicit first (dcmconv +te)
  const explicit = join(dir, "chest-explicit.dcm");
  execFileSync("dcmconv", ["+te", src, explicit]);
  execFileSync("gdcmconv", ["--j2k", explicit, j2k]);
  const rle = join(dir, "chest-rle.dcm");
  execFileSync("dcmcrle", [src, rle]);
  return [jls, j2k, rle].map((p) => {
    asNewStudy(p, p);
    return { name: p.split("/").pop()!, path: p, transferSyntaxUid: readDicom(p, { withPixelData: false }).transferSyntaxUid };
  });
}

/**
 * `n` studies made from test1..3 with dcmjs: each a copy with new Study/Series/SOP Instance UIDs
 * (uncompressed, so the dataset is rewritten as it was read).
 */
export function reUidStudies(dir: string, n: number): { path: string; studyInstanceUid: string }[] {
  const sources = ["test1.dcm", "test2.dcm", "test3.dcm"].map((f) => readFileSync(join(SHARED_DICOM, f)));
  const out: { path: string; studyInstanceUid: string }[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = sources[i % sources.length]!;
    const file = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    const study = newUid();
    const sop = newUid();
    file.dict["0020000D"] = { vr: "UI", Value: [study] };
    file.dict["0020000E"] = { vr: "UI", Value: [newUid()] };
    file.dict["00080018"] = { vr: "UI", Value: [sop] };
    file.meta["00020003"] = { vr: "UI", Value: [sop] };
    const path = join(dir, `study-${String(i).padStart(3, "0")}.dcm`);
    writeFileSync(path, Buffer.from(file.write()));
    out.push({ path, studyInstanceUid: study });
  }
  return out;
}

/** The shared file with its JPEG-LS codestream damaged (same lengths, so it still parses and is sent). */
export function corruptCodestream(src: string, out: string): string {
  const b = Buffer.from(readFileSync(src));
  // The last fragment holds the codestream: overwrite its second half (and the EOI marker) with zeros.
  const delimiter = b.lastIndexOf(Buffer.from([0xfe, 0xff, 0xdd, 0xe0]));
  const item = b.lastIndexOf(Buffer.from([0xfe, 0xff, 0x00, 0xe0]), delimiter);
  const length = b.readUInt32LE(item + 4);
  const start = item + 8;
  b.fill(0, start + Math.floor(length / 4), start + length);
  writeFileSync(out, b);
  return out;
}
