import type { PixelModule } from "./pixel-module.ts";

/**
 * The bytes of frame `index` from Pixel Data as dcmjs delivers it: a native value is one buffer;
 * an encapsulated value is a list where dcmjs has already merged fragments per frame when the
 * Basic Offset Table is present, and otherwise lists raw fragments. Without an offset table a
 * single-frame image is all fragments in order (PS3.5 A.4); for multi-frame we find frame starts by
 * their codestream markers.
 */
export function nativeFrame(value: ArrayBuffer[], frameBytes: number, index: number): Uint8Array {
  const all = concatBuffers(value);
  return all.subarray(index * frameBytes, (index + 1) * frameBytes);
}

export function encapsulatedFrame(fragments: ArrayBuffer[], pm: PixelModule, index: number): Uint8Array {
  if (index < 0 || index >= pm.numberOfFrames) throw new Error(`frame ${index} does not exist (Number of Frames ${pm.numberOfFrames})`);
  if (fragments.length === 0) throw new Error("encapsulated Pixel Data has no fragments");
  if (pm.numberOfFrames === 1) return concatBuffers(fragments);
  if (fragments.length === pm.numberOfFrames) return new Uint8Array(fragments[index]!);
  const starts: number[] = [];
  fragments.forEach((f, i) => {
    if (startsFrame(new Uint8Array(f, 0, Math.min(12, f.byteLength)))) starts.push(i);
  });
  if (starts.length !== pm.numberOfFrames) {
    throw new Error(`cannot split ${fragments.length} fragments into ${pm.numberOfFrames} frames (no Basic Offset Table, ${starts.length} codestream starts found)`);
  }
  return concatBuffers(fragments.slice(starts[index], starts[index + 1]));
}

/** JPEG/JPEG-LS SOI (FFD8), JPEG 2000 codestream SOC+SIZ (FF4F FF51) or JP2 signature box. */
function startsFrame(b: Uint8Array): boolean {
  if (b[0] === 0xff && b[1] === 0xd8) return true;
  if (b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51) return true;
  return b[4] === 0x6a && b[5] === 0x50 && b[6] === 0x20 && b[7] === 0x20;
}

function concatBuffers(parts: ArrayBuffer[]): Uint8Array {
  if (parts.length === 1) return new Uint8Array(parts[0]!);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p), at);
    at += p.byteLength;
  }
  return out;
}
