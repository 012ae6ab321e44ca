import type { PixelModule } from "../pixel-module.ts";
import { frameByteLength, type DecodedFrame, type FrameDecoder } from "./types.ts";

export const EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2";

/**
 * Uncompressed pixel data. dcmjs already inflated a deflated dataset and hands Pixel Data over as
 * the bytes on disk; big endian words are swapped here so every decoder delivers little endian.
 */
export const nativeDecoder: FrameDecoder = {
  name: "native (uncompressed)",
  transferSyntaxes: {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    [EXPLICIT_VR_BIG_ENDIAN]: "Explicit VR Big Endian",
  },
  encapsulated: false,
  decode(frame: Uint8Array, pm: PixelModule, transferSyntaxUid: string): DecodedFrame {
    const need = frameByteLength(pm);
    if (frame.length < need) throw new Error(`Pixel Data holds ${frame.length} bytes for this frame, the header needs ${need}`);
    let bytes = frame.subarray(0, need);
    if (transferSyntaxUid === EXPLICIT_VR_BIG_ENDIAN && pm.bitsAllocated > 8) bytes = swapWords(bytes, pm.bitsAllocated / 8);
    return { bytes, photometricInterpretation: pm.photometricInterpretation, planarConfiguration: pm.planarConfiguration };
  },
};

function swapWords(src: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i += width) {
    for (let b = 0; b < width; b++) out[i + b] = src[i + width - 1 - b]!;
  }
  return out;
}
