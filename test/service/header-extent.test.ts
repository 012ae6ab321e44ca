import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pixelDataOffset } from "../../src/dicom-listener/header-extent.ts";
import { parseDicom, readDicom } from "../../src/dicom/read.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";

const FILES = ["test1.dcm", "rsna_cr_jpeg_baseline.dcm", "RG2_J2KR.dcm", "RG2_JLSL.dcm", "RG2_RLE.dcm", "RG2_JPLY.dcm", "CT_small.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "JPEG-lossy.dcm", "SC_rgb_jpeg_dcmtk.dcm"];

describe("header extent (top-level Pixel Data offset) of received datasets", () => {
  it("finds the top-level Pixel Data in the first bytes, and the header parsed from them equals the file's", () => {
    if (!requireSharedData()) return;
    for (const f of FILES) {
      const path = join(SHARED_DICOM, f);
      const bytes = readFileSync(path);
      const start = 132 + 12 + bytes.readUInt32LE(140);
      const file = readDicom(path, { withPixelData: false });
      const explicit = file.transferSyntaxUid !== "1.2.840.10008.1.2";
      const dataset = bytes.subarray(start);
      const head = dataset.subarray(0, Math.min(dataset.length, 256 * 1024));
      const at = pixelDataOffset(head, explicit);
      expect(at, f).toBeDefined();
      expect([...dataset.subarray(at!, at! + 4)], f).toEqual([0xe0, 0x7f, 0x10, 0x00]);
      const partial = Buffer.concat([bytes.subarray(0, start), dataset.subarray(0, at)]);
      const parsed = parseDicom(new Uint8Array(partial.buffer, partial.byteOffset, partial.byteLength), path, { withPixelData: false });
      expect(parsed.dataset, f).toEqual(file.dataset);
    }
  });

  it("answers undefined when the header is not complete in the bytes", () => {
    if (!requireSharedData()) return;
    const bytes = readFileSync(join(SHARED_DICOM, "test1.dcm"));
    const start = 132 + 12 + bytes.readUInt32LE(140);
    expect(pixelDataOffset(bytes.subarray(start, start + 300), false)).toBeUndefined();
    expect(pixelDataOffset(Buffer.from("not a dataset at all, not at all"), true)).toBeUndefined();
  });
});
