import type { PixelModule } from "../pixel-module.ts";

/** One frame's samples as the decoder delivers them: little-endian words of Bits Allocated, per Planar Configuration. */
export interface DecodedFrame {
  bytes: Uint8Array;
  /** A codec may change the colour space it delivers (e.g. a JPEG decoded to RGB); otherwise the header's. */
  photometricInterpretation: string;
  planarConfiguration: 0 | 1;
}

/** A decoder for one transfer-syntax family. `frame` is the frame's bytes (native) or its concatenated fragments (encapsulated). */
export interface FrameDecoder {
  /** Short name for `steps`/inspect output and errors, e.g. "jpeg-ls (CharLS, dcmjs-codecs)". */
  readonly name: string;
  /** Transfer Syntax UID → its name, for the syntaxes this decoder handles. */
  readonly transferSyntaxes: Readonly<Record<string, string>>;
  /** True for encapsulated syntaxes (PS3.5 A.4): Pixel Data holds fragments, not a raw sample array. */
  readonly encapsulated: boolean;
  decode(frame: Uint8Array, pixelModule: PixelModule, transferSyntaxUid: string): DecodedFrame;
}

/** Bytes of one uncompressed frame. */
export function frameByteLength(pm: PixelModule): number {
  return pm.rows * pm.columns * pm.samplesPerPixel * (pm.bitsAllocated / 8);
}
