import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { resizeGray, toModelTensor, toModelTensorBatch, type InputSpec, type PresentationImage } from "../../src/image/index.ts";
import { loadPresentationImage } from "../../src/image/index.ts";
import { SHARED_NIH, requireSharedData } from "../helpers/shared-data.ts";

const HAVE = requireSharedData();

function image(width: number, height: number, f: (x: number, y: number) => number): PresentationImage {
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = f(x, y);
  return { width, height, data, source: { path: "synthetic", kind: "png" }, steps: { modality: "", voi: "", inversion: "" } };
}

describe("anti-aliased resize (Lanczos-3, float32)", () => {
  it("keeps a constant image constant and an identity size unchanged", () => {
    const c = resizeGray(new Float32Array(300 * 200).fill(0.25), 300, 200, 64, 64);
    for (const v of c) expect(v).toBeCloseTo(0.25, 6);
    const img = image(5, 4, (x, y) => (x + y) / 8);
    expect(Array.from(resizeGray(img.data, 5, 4, 5, 4))).toEqual(Array.from(img.data));
  });

  it("averages a 1-pixel checkerboard to mid-gray instead of aliasing it", () => {
    const board = image(512, 512, (x, y) => (x + y) % 2);
    const out = resizeGray(board.data, 512, 512, 224, 224);
    let worst = 0;
    // away from the border (where the kernel is cut) every output is the local mean, 0.5
    for (let y = 8; y < 216; y++) for (let x = 8; x < 216; x++) worst = Math.max(worst, Math.abs(out[y * 224 + x]! - 0.5));
    expect(worst).toBeLessThan(0.02);
  });

  it.skipIf(!HAVE)("agrees with libvips' Lanczos-3 (sharp) on an NIH image within 8-bit rounding", async () => {
    const path = join(SHARED_NIH, "images", "00000001_000.png");
    const img = await loadPresentationImage(path);
    const ours = resizeGray(img.data, img.width, img.height, 224, 224);
    const { data, info } = await sharp(path).resize(224, 224, { kernel: "lanczos3" }).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(1);
    let sum = 0;
    let max = 0;
    for (let i = 0; i < ours.length; i++) {
      const d = Math.abs(ours[i]! * 255 - data[i]!);
      sum += d;
      max = Math.max(max, d);
    }
    // measured: mean 0.29, max 1.9 gray levels (libvips reduces in fixed point and rounds to 8 bits)
    expect(sum / ours.length).toBeLessThan(0.5);
    expect(max).toBeLessThan(4);
  });
});

describe("toModelTensor", () => {
  const spec: InputSpec = { size: 4, layout: "NCHW", pixelScale: 255, mean: [100, 110, 120], std: [50, 60, 70] };
  const img = image(4, 4, (x, y) => (y * 4 + x) / 15);

  it("NCHW: three channels of (v*pixelScale - mean[c]) / std[c]", () => {
    const t = toModelTensor(img, spec);
    expect(t.length).toBe(3 * 16);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 16; i++) {
        const v = i / 15;
        expect(t[c * 16 + i]).toBeCloseTo((v * 255 - spec.mean[c]!) / spec.std[c]!, 5);
      }
    }
  });

  it("NHWC interleaves the same values", () => {
    const nchw = toModelTensor(img, spec);
    const nhwc = toModelTensor(img, { ...spec, layout: "NHWC" });
    for (let i = 0; i < 16; i++) for (let c = 0; c < 3; c++) expect(nhwc[i * 3 + c]).toBe(nchw[c * 16 + i]);
  });

  it("resizes to the square input and batches images back to back", () => {
    const big = image(40, 30, (x, y) => ((x * 7 + y * 3) % 11) / 10);
    const s: InputSpec = { size: 8, layout: "NCHW", pixelScale: 1, mean: [0, 0, 0], std: [1, 1, 1] };
    const one = toModelTensor(big, s);
    expect(Array.from(one.subarray(0, 64))).toEqual(Array.from(resizeGray(big.data, 40, 30, 8, 8)));
    const batch = toModelTensorBatch([img, big], s);
    expect(batch.length).toBe(2 * 3 * 64);
    expect(Array.from(batch.subarray(192))).toEqual(Array.from(one));
  });

  it("rejects a zero std", () => {
    expect(() => toModelTensor(img, { ...spec, std: [1, 0, 1] })).toThrow(/std/);
  });
});
