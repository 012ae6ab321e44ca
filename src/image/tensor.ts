import type { PresentationImage } from "./presentation.ts";
import { resizeGray } from "./resize.ts";

export interface InputSpec {
  size: number; // square input, e.g. 224 or 320
  layout: "NCHW" | "NHWC";
  pixelScale: number; // presentation [0,1] is multiplied by this first (255 for the seed's 8-bit images)
  mean: [number, number, number]; // per channel, in pixelScale units
  std: [number, number, number];
}

/**
 * The one preprocessing path for inference, training and audits: anti-aliased resize of the
 * whole image to size x size (no crop; chest films are near-square), three identical channels,
 * (v * pixelScale - mean[c]) / std[c]. Returns 3*size*size floats in spec.layout.
 */
export function toModelTensor(img: PresentationImage, spec: InputSpec): Float32Array {
  const out = new Float32Array(3 * spec.size * spec.size);
  writeModelTensor(img, spec, out, 0);
  return out;
}

/** A batch [N, ...] in one buffer, image i at offset i*3*size*size. */
export function toModelTensorBatch(imgs: PresentationImage[], spec: InputSpec): Float32Array {
  const per = 3 * spec.size * spec.size;
  const out = new Float32Array(imgs.length * per);
  imgs.forEach((img, i) => writeModelTensor(img, spec, out, i * per));
  return out;
}

function writeModelTensor(img: PresentationImage, spec: InputSpec, out: Float32Array, offset: number): void {
  const { size, pixelScale, mean, std } = spec;
  if (!(size > 0) || !Number.isInteger(size)) throw new Error(`InputSpec.size must be a positive integer, got ${size}`);
  if (std.some((s) => !(s !== 0))) throw new Error(`InputSpec.std must be non-zero, got ${std.join(",")}`);
  const gray = resizeGray(img.data, img.width, img.height, size, size);
  const plane = size * size;
  const a = [pixelScale / std[0], pixelScale / std[1], pixelScale / std[2]] as const;
  const b = [-mean[0] / std[0], -mean[1] / std[1], -mean[2] / std[2]] as const;
  if (spec.layout === "NCHW") {
    for (let c = 0; c < 3; c++) {
      const base = offset + c * plane;
      const ac = a[c]!;
      const bc = b[c]!;
      for (let i = 0; i < plane; i++) out[base + i] = gray[i]! * ac + bc;
    }
  } else {
    for (let i = 0; i < plane; i++) {
      const v = gray[i]!;
      const o = offset + i * 3;
      out[o] = v * a[0] + b[0];
      out[o + 1] = v * a[1] + b[1];
      out[o + 2] = v * a[2] + b[2];
    }
  }
}
