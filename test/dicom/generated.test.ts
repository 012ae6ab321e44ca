import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeStoredFrame, readDicom } from "../../src/dicom/index.ts";
import { tempDir } from "../helpers/tmp.ts";
import { referenceDecode } from "./reference.ts";
import { writeSynthetic } from "./synthetic.ts";

// Syntaxes and layouts the shared files do not cover, made by dcmtk's encoders from small
// synthetic images and decoded by us and by dcmtk's decoder.
const tmp = tempDir("cxr-generated-");
afterAll(() => tmp.cleanup());

const W = 48;
const H = 40;
/** A 12-bit test pattern: gradient plus a checker so neighbouring pixels differ. */
const pattern12 = Uint16Array.from({ length: W * H }, (_, i) => ((i % W) * 80 + Math.floor(i / W) * 7 + ((i % W) + Math.floor(i / W)) % 2 * 500) % 4096);

describe("generated with dcmtk encoders", () => {
  it("JPEG Lossless Process 14 (.57, selection value 6) decodes to the original 12-bit values", async () => {
    const src = writeSynthetic(tmp.dir, "p14-src.dcm", { Rows: H, Columns: W, BitsStored: 12, HighBit: 11 }, pattern12);
    const out = join(tmp.dir, "p14.dcm");
    execFileSync("dcmcjpeg", ["+el", "+sv", "6", src, out]);
    const file = readDicom(out);
    expect(file.transferSyntaxUid).toBe("1.2.840.10008.1.2.4.57");
    expect(Array.from((await decodeStoredFrame(file)).values)).toEqual(Array.from(pattern12));
  });

  it("YBR_FULL_422 JPEG baseline: our luminance equals dcmdjpeg's Y channel", async () => {
    // an RGB image with distinct channels, 8 bits
    const rgb = Uint8Array.from({ length: W * H * 3 }, (_, i) => {
      const p = Math.floor(i / 3);
      const c = i % 3;
      return c === 0 ? (p * 5) % 256 : c === 1 ? ((p % W) * 5) % 256 : (Math.floor(p / W) * 6) % 256;
    });
    const src = writeSynthetic(
      tmp.dir,
      "rgb.dcm",
      { Rows: H, Columns: W, SamplesPerPixel: 3, PhotometricInterpretation: "RGB", PlanarConfiguration: 0, BitsAllocated: 8, BitsStored: 8, HighBit: 7 },
      rgb,
    );
    const out = join(tmp.dir, "ybr422.dcm");
    execFileSync("dcmcjpeg", ["+eb", "+s2", src, out]);
    const file = readDicom(out);
    expect(file.dataset.PhotometricInterpretation).toBe("YBR_FULL_422");
    const ours = await decodeStoredFrame(file);
    expect(ours.colour).toBe("YBR_FULL_422: luminance (Y) channel");
    const ref = await decodeStoredFrame(readDicom(referenceDecode(out, file.transferSyntaxUid, tmp.dir).out));
    expect(Array.from(ours.values)).toEqual(Array.from(ref.values));
    // and the luminance is the image's luma within JPEG loss
    let worst = 0;
    for (let p = 0; p < W * H; p++) {
      const luma = 0.299 * rgb[p * 3]! + 0.587 * rgb[p * 3 + 1]! + 0.114 * rgb[p * 3 + 2]!;
      worst = Math.max(worst, Math.abs(ours.values[p]! - luma));
    }
    expect(worst).toBeLessThan(40);
  });

  it("native RGB, colour-by-plane, becomes Rec. 601 luma", async () => {
    const n = 4;
    const planes = Uint8Array.from([10, 20, 30, 40, 200, 100, 50, 0, 0, 255, 128, 64]); // R plane, G plane, B plane
    const file = readDicom(
      writeSynthetic(
        tmp.dir,
        "planar.dcm",
        { Rows: 2, Columns: 2, SamplesPerPixel: 3, PhotometricInterpretation: "RGB", PlanarConfiguration: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7 },
        planes,
      ),
    );
    const s = await decodeStoredFrame(file);
    const expected = Array.from({ length: n }, (_, p) => Math.round(0.299 * planes[p]! + 0.587 * planes[n + p]! + 0.114 * planes[2 * n + p]!));
    expect(Array.from(s.values)).toEqual(expected); // [120, 141, 74, 17]
  });

  it("multi-frame: frame 0 and frame 1 from native and RLE (one fragment per frame)", async () => {
    const f0 = Uint16Array.from({ length: 16 }, (_, i) => i * 3);
    const f1 = Uint16Array.from({ length: 16 }, (_, i) => 1000 - i * 5);
    const both = new Uint16Array([...f0, ...f1]);
    const src = writeSynthetic(tmp.dir, "mf.dcm", { Rows: 4, Columns: 4, NumberOfFrames: "2", BitsStored: 12, HighBit: 11 }, both);
    const rle = join(tmp.dir, "mf-rle.dcm");
    execFileSync("dcmcrle", [src, rle]);
    for (const path of [src, rle]) {
      const file = readDicom(path);
      expect(Array.from((await decodeStoredFrame(file, 0)).values)).toEqual(Array.from(f0));
      expect(Array.from((await decodeStoredFrame(file, 1)).values)).toEqual(Array.from(f1));
    }
    expect(readDicom(rle).transferSyntaxUid).toBe("1.2.840.10008.1.2.5");
  });

  it("multi-frame JPEG lossless split into 1 KB fragments, with and without a Basic Offset Table", async () => {
    const frames = [pattern12, pattern12.map((v) => 4095 - v)];
    const src = writeSynthetic(tmp.dir, "mf12.dcm", { Rows: H, Columns: W, NumberOfFrames: "2", BitsStored: 12, HighBit: 11 }, Uint16Array.from([...frames[0]!, ...frames[1]!]));
    for (const table of ["+ot", "-ot"]) {
      const out = join(tmp.dir, `mf12${table}.dcm`);
      execFileSync("dcmcjpeg", ["+e1", "+fs", "1", table, src, out]);
      const file = readDicom(out);
      expect(file.transferSyntaxUid).toBe("1.2.840.10008.1.2.4.70");
      for (const k of [0, 1]) expect(Array.from((await decodeStoredFrame(file, k)).values), `${table} frame ${k}`).toEqual(Array.from(frames[k]!));
    }
  });
});
