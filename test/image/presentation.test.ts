import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { DicomReadError, decodeStoredFrame, readDicom, windowLinear } from "../../src/dicom/index.ts";
import { loadPresentationImage, resizeGray, toUint16 } from "../../src/image/index.ts";
import { SHARED_DICOM, SHARED_NIH, requireSharedData } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const HAVE = requireSharedData();
const tmp = tempDir("cxr-present-");
afterAll(() => tmp.cleanup());

/** Reads a 16-bit gray PNG with pngjs, independently of the libvips encoder that wrote it. */
function readPng16(path: string): { width: number; height: number; values: Uint16Array } {
  const png = PNG.sync.read(readFileSync(path), { skipRescale: true });
  expect((png as unknown as { depth: number }).depth).toBe(16);
  expect(png.data).toBeInstanceOf(Uint16Array); // 16-bit samples, expanded to RGBA
  const rgba = png.data as unknown as Uint16Array;
  const values = new Uint16Array(png.width * png.height);
  for (let i = 0; i < values.length; i++) values[i] = rgba[i * 4]!;
  return { width: png.width, height: png.height, values };
}

/** Runs the cxr CLI in-process (spawning a second Node per call costs seconds on a loaded CI box). */
async function cxr(...args: string[]): Promise<number> {
  return main(["node", "cxr", ...args]);
}

describe.skipIf(!HAVE)("presentation images from the real files", () => {
  it("the fake-MONOCHROME1 RSNA file is the exact inverse of the MONOCHROME2 one", async () => {
    const p1 = join(SHARED_DICOM, "rsna_cr_jpeg_baseline_fake_monochrome1.dcm");
    const p2 = join(SHARED_DICOM, "rsna_cr_jpeg_baseline.dcm");
    // same stored values, bit for bit: only the header differs
    const s1 = await decodeStoredFrame(readDicom(p1));
    const s2 = await decodeStoredFrame(readDicom(p2));
    expect(s1.values).toEqual(s2.values);
    const m1 = await loadPresentationImage(p1);
    const m2 = await loadPresentationImage(p2);
    expect(m2.steps.inversion).toBe("none");
    expect(m1.steps.inversion).toBe("MONOCHROME1 inverted");
    expect({ ...m1.steps, inversion: "" }).toEqual({ ...m2.steps, inversion: "" });
    let worst = 0;
    for (let i = 0; i < m1.data.length; i++) worst = Math.max(worst, Math.abs(m1.data[i]! - (1 - m2.data[i]!)));
    // 1 - y is exact in real arithmetic; storing y and 1 - y as float32 each rounds once (<= 2^-24 apart)
    expect(worst).toBeLessThanOrEqual(2 ** -24);
    // through `cxr pixels`: the two 16-bit PNGs sum to 65535; a pixel may be off by one 16-bit step only
    // when y*65535 lies within float32 rounding (~0.004) of a .5 boundary
    const out1 = join(tmp.dir, "m1.png");
    const out2 = join(tmp.dir, "m2.png");
    expect(await cxr("pixels", p1, "--out", out1)).toBe(0);
    expect(await cxr("pixels", p2, "--out", out2)).toBe(0);
    const a = readPng16(out1);
    const b = readPng16(out2);
    expect([a.width, a.height]).toEqual([1024, 1024]);
    let offByOne = 0;
    for (let i = 0; i < a.values.length; i++) {
      const sum = a.values[i]! + b.values[i]!;
      if (sum === 65535) continue;
      expect(Math.abs(sum - 65535)).toBe(1);
      const y = m2.data[i]! * 65535;
      expect(Math.abs(y - Math.floor(y) - 0.5)).toBeLessThan(0.005);
      offByOne++;
    }
    console.log(`MONOCHROME1 vs MONOCHROME2 16-bit PNGs: ${offByOne} of ${a.values.length} pixels off by one step (float32 rounding at .5)`);
  });

  it("RG2 presentation values are the LINEAR window 511/1024 of the stored values", async () => {
    const path = join(SHARED_DICOM, "RG2_JLSL.dcm");
    const img = await loadPresentationImage(path);
    const stored = await decodeStoredFrame(readDicom(path));
    expect(img.steps).toEqual({ modality: "identity (no Modality LUT)", voi: "window 511/1024 LINEAR", inversion: "none" });
    for (const i of [0, 12345, 1_000_000, stored.values.length - 1]) {
      expect(img.data[i]).toBeCloseTo(windowLinear(stored.values[i]!, 511, 1024), 6);
    }
  });

  it("test2.dcm matches the NIH PNG it was made from (00000001_000.png) after downscaling; test1's source is not in the shared set", async () => {
    // test1.dcm is PatientID 2, "No Finding": NIH image 00000002_000.png, which is not among the 520 shared PNGs.
    expect(readDicom(join(SHARED_DICOM, "test1.dcm"), { withPixelData: false }).dataset.PatientID).toBe("2");
    expect(existsSync(join(SHARED_NIH, "images", "00000002_000.png"))).toBe(false);
    const dcm = await loadPresentationImage(join(SHARED_DICOM, "test2.dcm"));
    const png = await loadPresentationImage(join(SHARED_NIH, "images", "00000001_000.png"));
    expect([dcm.width, png.width]).toEqual([1024, 512]);
    const small = resizeGray(dcm.data, 1024, 1024, 512, 512);
    let sum = 0;
    let sa = 0;
    let sb = 0;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    const diffs = new Float32Array(small.length);
    for (let i = 0; i < small.length; i++) {
      const a = small[i]!;
      const b = png.data[i]!;
      diffs[i] = Math.abs(a - b) * 255;
      sum += diffs[i]!;
      sa += a;
      sb += b;
      sab += a * b;
      saa += a * a;
      sbb += b * b;
    }
    const n = small.length;
    const r = (sab - (sa * sb) / n) / Math.sqrt((saa - (sa * sa) / n) * (sbb - (sb * sb) / n));
    diffs.sort();
    const p99 = diffs[Math.floor(n * 0.99)]!;
    console.log(`test2 vs 00000001_000.png: mean |d| ${(sum / n).toFixed(3)} gray levels, p99 ${p99.toFixed(2)}, r ${r.toFixed(6)}`);
    // the PNG was made by PIL's Lanczos from the same 1024 image; ours differs only by kernel details and 8-bit rounding
    expect(sum / n).toBeLessThan(1);
    expect(p99).toBeLessThan(4);
    expect(r).toBeGreaterThan(0.999);
  });

  it("NIH PNGs are their 8-bit gray values / 255, exactly", async () => {
    const path = join(SHARED_NIH, "images", "00000001_000.png");
    const img = await loadPresentationImage(path);
    const png = PNG.sync.read(readFileSync(path));
    expect(img.source.kind).toBe("png");
    for (let i = 0; i < img.data.length; i += 97) expect(img.data[i]).toBe(Math.fround(png.data[i * 4]! / 255));
  });

  it("JPEG input and 16-bit PNG input take the same path (gray / full scale)", async () => {
    const png = join(SHARED_NIH, "images", "00000001_000.png");
    const jpeg = join(tmp.dir, "nih.jpg");
    await sharp(png).toColourspace("b-w").jpeg({ quality: 95 }).toFile(jpeg);
    const a = await loadPresentationImage(png);
    const b = await loadPresentationImage(jpeg);
    expect(b.source.kind).toBe("jpeg");
    expect(b.steps.modality).toBe("JPEG 8-bit gray / 255");
    let sum = 0;
    for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i]! - b.data[i]!);
    expect(sum / a.data.length).toBeLessThan(2 / 255); // JPEG q95 loss
    // our own 16-bit output read back as input gives the presentation values to 1/65535
    const mr = await loadPresentationImage(join(SHARED_DICOM, "MR_small_RLE.dcm"));
    const out = join(tmp.dir, "mr16.png");
    expect(await cxr("pixels", join(SHARED_DICOM, "MR_small_RLE.dcm"), "--out", out)).toBe(0);
    const back = await loadPresentationImage(out);
    expect(back.steps.modality).toBe("PNG 16-bit gray / 65535");
    let worst = 0;
    for (let i = 0; i < back.data.length; i++) worst = Math.max(worst, Math.abs(back.data[i]! - mr.data[i]!));
    expect(worst).toBeLessThanOrEqual(0.5 / 65535 + 1e-7);
  });

  it("cxr pixels writes 16-bit PNG = round(presentation * 65535) using the full output range", async () => {
    const path = join(SHARED_DICOM, "RG2_J2KR.dcm");
    const out = join(tmp.dir, "rg2.png");
    expect(await cxr("pixels", path, "--out", out)).toBe(0);
    const png = readPng16(out);
    const expected = toUint16(await loadPresentationImage(path));
    expect([png.width, png.height]).toEqual([1760, 2140]);
    let bad = 0;
    let min = 65535;
    let max = 0;
    for (let i = 0; i < expected.length; i++) {
      if (png.values[i] !== expected[i]) bad++;
      min = Math.min(min, png.values[i]!);
      max = Math.max(max, png.values[i]!);
    }
    expect(bad).toBe(0);
    // darkest/brightest stored values through the LINEAR window, by the formula
    const stored = await decodeStoredFrame(readDicom(path));
    let smin = Infinity;
    let smax = -Infinity;
    for (const v of stored.values) {
      smin = Math.min(smin, v);
      smax = Math.max(smax, v);
    }
    expect([min, max]).toEqual([Math.round(windowLinear(smin, 511, 1024) * 65535), Math.round(windowLinear(smax, 511, 1024) * 65535)]);
  });
});

describe("raster input errors", () => {
  it("a constant PNG is refused with the file named, not turned into a blank image", async () => {
    const path = join(tmp.dir, "constant.png");
    await sharp(Buffer.alloc(4 * 3, 9), { raw: { width: 4, height: 3, channels: 1 } }).png().toFile(path);
    const err = await loadPresentationImage(path).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(DicomReadError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(/PNG cannot be read: image is constant \(every value 0\.035\d*\)/);
  });
});
