import { writeFile } from "node:fs/promises";
import sharp from "sharp";
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

/** Encodes a 16-bit grayscale PNG at native resolution (libvips via sharp; a Uint16Array input keeps 16 bits). */
export async function encodePng16(img: PresentationImage): Promise<Buffer> {
  return sharp(toUint16(img), { raw: { width: img.width, height: img.height, channels: 1 } })
    .toColourspace("grey16")
    .png({ compressionLevel: 6 })
    .toBuffer();
}

export async function writePng16(img: PresentationImage, path: string): Promise<void> {
  await writeFile(path, await encodePng16(img));
}
