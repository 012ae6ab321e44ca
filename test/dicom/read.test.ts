import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DicomReadError, decodeStoredFrame, readDicom } from "../../src/dicom/index.ts";
import { loadPresentationImage } from "../../src/image/index.ts";
import { SHARED_DICOM, requireSharedData } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { writeSynthetic } from "./synthetic.ts";

const HAVE = requireSharedData();
const tmp = tempDir("cxr-read-");
afterAll(() => tmp.cleanup());

/** Bytes after the preamble, "DICM" and the whole file meta group: what an ACR-NEMA file holds. */
function bareDataset(part10: Buffer): Buffer {
  const metaLength = part10.readUInt32LE(132 + 8); // (0002,0000) UL value
  return part10.subarray(132 + 12 + metaLength);
}

describe.skipIf(!HAVE)("reading files without preamble or meta header", () => {
  it("an ACR-NEMA style implicit VR dataset (no preamble, no meta) reads and decodes like the Part 10 file", async () => {
    const src = join(SHARED_DICOM, "MR_small_implicit.dcm");
    const bare = join(tmp.dir, "acr-nema.dcm");
    writeFileSync(bare, bareDataset(readFileSync(src)));
    const file = readDicom(bare);
    expect(file.format).toBe("bare-dataset");
    expect(file.transferSyntaxUid).toBe("1.2.840.10008.1.2");
    expect(file.dataset.Rows).toBe(64);
    const a = await decodeStoredFrame(file);
    const b = await decodeStoredFrame(readDicom(src));
    expect(Array.from(a.values)).toEqual(Array.from(b.values));
  });

  it("a bare explicit VR little endian dataset is recognised as explicit", async () => {
    const bare = join(tmp.dir, "bare-explicit.dcm");
    writeFileSync(bare, bareDataset(readFileSync(join(SHARED_DICOM, "CT_small.dcm"))));
    const file = readDicom(bare);
    expect(file.transferSyntaxUid).toBe("1.2.840.10008.1.2.1");
    expect(file.dataset.Modality).toBe("CT");
    expect((await decodeStoredFrame(file)).width).toBe(128);
  });

  it("a Part 10 file missing only its 128-byte preamble reads", () => {
    const p = join(tmp.dir, "no-preamble.dcm");
    writeFileSync(p, readFileSync(join(SHARED_DICOM, "test1.dcm")).subarray(128));
    const file = readDicom(p);
    expect(file.format).toBe("part10-without-preamble");
    expect(file.dataset.BodyPartExamined).toBe("CHEST");
  });

  it("withPixelData: false stops before Pixel Data but keeps the header", () => {
    const file = readDicom(join(SHARED_DICOM, "RG2_JPLL.dcm"), { withPixelData: false });
    expect(file.dataset.PixelData).toBeUndefined();
    expect(file.dataset.Rows).toBe(2140);
  });
});

describe("errors name the file, the tag or syntax, and the reason", () => {
  const expectError = async (path: string, pattern: RegExp) => {
    const err = await loadPresentationImage(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DicomReadError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(pattern);
  };
  const header = { Rows: 2, Columns: 2 };

  it("missing file", () => expectError(join(tmp.dir, "nope.dcm"), /cannot read file \(ENOENT\)/));
  it("not DICOM", async () => {
    const p = join(tmp.dir, "text.dcm");
    writeFileSync(p, "hello, this is not a DICOM file at all");
    await expectError(p, /not DICOM/);
  });
  it("missing Pixel Data", async () => {
    const p = writeSynthetic(tmp.dir, "nopix.dcm", header, new Uint16Array(4));
    const file = readFileSync(p);
    // cut the file just before (7FE0,0010): the header stays valid, the pixels are gone
    const at = file.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
    writeFileSync(p, file.subarray(0, at));
    await expectError(p, /\(7FE0,0010\).*(missing|not an image)/);
  });
  it("truncated native Pixel Data", async () => {
    const p = writeSynthetic(tmp.dir, "short.dcm", { Rows: 4, Columns: 4 }, new Uint16Array([1, 2, 3, 4]));
    await expectError(p, /\(7FE0,0010\).*Pixel Data holds 8 bytes for this frame, the header needs 32/);
  });
  it.skipIf(!HAVE)("a truncated file is refused, not decoded with a zero-filled tail (native, JPEG, deflated)", async () => {
    for (const [name, keep] of [["test1.dcm", 600_000], ["rsna_cr_jpeg_baseline.dcm", 60_000]] as const) {
      const p = join(tmp.dir, `cut-${name}`);
      writeFileSync(p, readFileSync(join(SHARED_DICOM, name)).subarray(0, keep));
      await expectError(p, /\(7FE0,0010\).*Pixel Data is truncated/);
    }
    const dfl = join(tmp.dir, "cut-image_dfl.dcm");
    const whole = readFileSync(join(SHARED_DICOM, "image_dfl.dcm"));
    writeFileSync(dfl, whole.subarray(0, whole.length - 200));
    await expectError(dfl, /transfer syntax 1\.2\.840\.10008\.1\.2\.1\.99: deflated dataset cannot be inflated \(unexpected end of file\)/);
  });
  it("a constant image is refused, not rendered blank", async () => {
    await expectError(writeSynthetic(tmp.dir, "const.dcm", header, new Uint16Array([7, 7, 7, 7])), /constant \(every stored value is 7\)/);
  });
  it("a missing pixel module attribute names its tag", async () => {
    await expectError(writeSynthetic(tmp.dir, "nobits.dcm", { ...header, BitsAllocated: undefined }, new Uint16Array(4)), /\(0028,0100\).*BitsAllocated is missing/);
  });
  it("a gray image with a colour Photometric Interpretation is refused rather than guessed", async () => {
    await expectError(writeSynthetic(tmp.dir, "rgb1.dcm", { ...header, PhotometricInterpretation: "RGB" }, new Uint16Array([1, 2, 3, 4])), /\(0028,0004\).*RGB is not defined for 1 sample per pixel/);
  });
  it("a colour image with a Photometric Interpretation we cannot reduce to gray names the file and tag", async () => {
    const rgbWords = new Uint16Array(2 * 2 * 3).fill(1);
    await expectError(
      writeSynthetic(tmp.dir, "mono3.dcm", { ...header, SamplesPerPixel: 3, PlanarConfiguration: 0 }, rgbWords),
      /\(0028,0004\).*Photometric Interpretation MONOCHROME2 with 3 samples per pixel is not supported/,
    );
  });
  it("a frame beyond Number of Frames is named", async () => {
    const file = readDicom(writeSynthetic(tmp.dir, "oneframe.dcm", header, new Uint16Array([1, 2, 3, 4])));
    await expect(decodeStoredFrame(file, 3)).rejects.toThrow(/\(0028,0008\).*frame 3 does not exist \(Number of Frames 1\)/);
  });
  it("an unsupported transfer syntax is named", async () => {
    const p = writeSynthetic(tmp.dir, "mpeg.dcm", header, [new ArrayBuffer(8)], "1.2.840.10008.1.2.4.100");
    await expectError(p, /transfer syntax 1\.2\.840\.10008\.1\.2\.4\.100: transfer syntax is not supported/);
  });
  it("a corrupt JPEG-LS codestream is a decode error naming the syntax", async () => {
    const junk = new Uint8Array(64).map((_, i) => (i * 37) & 0xff);
    const p = writeSynthetic(tmp.dir, "junk-jls.dcm", header, [junk.buffer], "1.2.840.10008.1.2.4.80");
    await expectError(p, /transfer syntax 1\.2\.840\.10008\.1\.2\.4\.80: JPEG-LS Lossless frame 0 cannot be decoded/);
  });
});
