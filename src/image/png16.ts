import { writeFileSync } from "node:fs";
import { PNG } from "pngjs";
import type { PresentationImage } from "./presentation.ts";

/** Presentation values [0,1] → 0..65535, rounded: the full VOI output range after inversion. */
export function toUint16(img: PresentationImage): Uint16Array {
  const out = new Uint16Array(img.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = img.data[i]!;
    out[i] = Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * 65535);
  }
  return out;
}

/** Encodes a 16-bit grayscale PNG at native resolution. */
export function encodePng16(img: PresentationImage): Buffer {
  const words = toUint16(img);
  const png = new PNG({ width: img.width, height: img.height, colorType: 0, inputColorType: 0, bitDepth: 16, inputHasAlpha: false });
  // pngjs reads 16-bit input as host-order Uint16 words over the buffer
  png.data = Buffer.from(words.buffer, words.byteOffset, words.byteLength);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, bitDepth: 16, inputHasAlpha: false });
}

export function writePng16(img: PresentationImage, path: string): void {
  writeFileSync(path, encodePng16(img));
}
