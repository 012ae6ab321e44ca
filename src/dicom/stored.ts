import { decoderFor, initCodecs, transferSyntaxName } from "./decoders/index.ts";
import { frameByteLength, type DecodedFrame } from "./decoders/types.ts";
import { DicomReadError } from "./errors.ts";
import { encapsulatedFrame, nativeFrame } from "./frames.ts";
import { readPixelModule, type PixelModule } from "./pixel-module.ts";
import type { DicomFile } from "./read.ts";

/** One frame's stored pixel values (PS3.3 C.7.6.3.1): masked to Bits Stored, shifted below High Bit, sign-extended. */
export interface StoredFrame {
  width: number;
  height: number;
  /** Row-major stored values of the gray channel. */
  values: Int32Array;
  pixelModule: PixelModule;
  transferSyntaxUid: string;
  decoder: string;
  /** How a colour image became one gray channel, or undefined for monochrome. */
  colour?: string;
}

/**
 * Decodes frame `frame` (default 0, the one the triage uses) to stored values. Colour images
 * become gray: YBR_* by their Y (luminance) channel, RGB by Rec. 601 luma. Throws DicomReadError.
 */
export async function decodeStoredFrame(file: DicomFile, frame = 0): Promise<StoredFrame> {
  await initCodecs();
  return decodeStoredFrameSync(file, frame);
}

/** Same as decodeStoredFrame, for callers that awaited initCodecs() already (hot loops, workers). */
export function decodeStoredFrameSync(file: DicomFile, frame = 0): StoredFrame {
  const ts = file.transferSyntaxUid;
  const pm = readPixelModule(file);
  const photometric = pm.photometricInterpretation;
  if (photometric === "PALETTE COLOR") {
    throw new DicomReadError(file.path, "PALETTE COLOR images are not supported (not a radiograph)", { tag: "(0028,0004)", transferSyntaxUid: ts });
  }
  if (pm.samplesPerPixel === 1 && photometric !== "MONOCHROME1" && photometric !== "MONOCHROME2") {
    // guessing a gray mapping here could silently invert or garble the image
    throw new DicomReadError(file.path, `Photometric Interpretation ${photometric} is not defined for 1 sample per pixel`, { tag: "(0028,0004)", transferSyntaxUid: ts });
  }
  if (!Number.isInteger(frame) || frame < 0 || frame >= pm.numberOfFrames) {
    throw new DicomReadError(file.path, `frame ${frame} does not exist (Number of Frames ${pm.numberOfFrames})`, { tag: "(0028,0008)", transferSyntaxUid: ts });
  }
  const decoder = decoderFor(ts);
  if (!decoder) throw new DicomReadError(file.path, "transfer syntax is not supported", { transferSyntaxUid: ts });
  const pixelData = pixelDataValue(file);
  let decoded: DecodedFrame;
  try {
    const bytes = decoder.encapsulated ? encapsulatedFrame(pixelData, pm, frame) : nativeFrame(pixelData, frameByteLength(pm), frame);
    decoded = decoder.decode(bytes, pm, ts);
  } catch (err) {
    if (err instanceof DicomReadError) throw err;
    throw new DicomReadError(file.path, `${transferSyntaxName(ts)} frame ${frame} cannot be decoded: ${(err as Error).message}`, {
      tag: "(7FE0,0010)",
      transferSyntaxUid: ts,
    });
  }
  const gray = grayStoredValues(decoded, pm, decoder.encapsulated);
  if (!gray) {
    throw new DicomReadError(file.path, `Photometric Interpretation ${decoded.photometricInterpretation} with ${pm.samplesPerPixel} samples per pixel is not supported`, {
      tag: "(0028,0004)",
      transferSyntaxUid: ts,
    });
  }
  const { values, colour } = gray;
  return { width: pm.columns, height: pm.rows, values, pixelModule: pm, transferSyntaxUid: ts, decoder: decoder.name, colour };
}

function pixelDataValue(file: DicomFile): ArrayBuffer[] {
  const el = file.dict["7FE00010"];
  const v = el?.Value;
  if (!el || !Array.isArray(v) || v.length === 0 || !v.every((b) => b instanceof ArrayBuffer)) {
    throw new DicomReadError(file.path, "Pixel Data is missing or empty", { tag: "(7FE0,0010)", transferSyntaxUid: file.transferSyntaxUid });
  }
  const buffers = v as ArrayBuffer[];
  if (buffers.every((b) => b.byteLength === 0)) {
    throw new DicomReadError(file.path, "Pixel Data is empty", { tag: "(7FE0,0010)", transferSyntaxUid: file.transferSyntaxUid });
  }
  return buffers;
}

/**
 * Extracts stored values of one channel. Native data keeps bits above High Bit and below
 * High Bit - Bits Stored + 1 as other data (PS3.5 8.1.1), so we shift and mask; codecs deliver
 * values in the low bits (PS3.5 8.2 requires High Bit = Bits Stored - 1 there), so no shift.
 * Undefined for a colour Photometric Interpretation other than RGB and YBR_*.
 */
function grayStoredValues(decoded: DecodedFrame, pm: PixelModule, encapsulated: boolean): { values: Int32Array; colour?: string } | undefined {
  const n = pm.rows * pm.columns;
  const { bytes } = decoded;
  const words =
    pm.bitsAllocated === 8
      ? bytes
      : pm.bitsAllocated === 16
        ? alignedView(bytes, 2, (b, o, l) => new Uint16Array(b, o, l))
        : alignedView(bytes, 4, (b, o, l) => new Int32Array(b, o, l));
  const spp = pm.samplesPerPixel;
  const photometric = decoded.photometricInterpretation;
  const out = new Int32Array(n);
  const shift = encapsulated ? 0 : pm.highBit + 1 - pm.bitsStored;
  const bs = pm.bitsStored;
  const mask = bs === 32 ? -1 : (1 << bs) - 1;
  const signShift = 32 - bs;
  const signed = pm.pixelRepresentation === 1;
  const stored = (raw: number): number => {
    const v = (raw >>> shift) & mask;
    return signed ? (v << signShift) >> signShift : v;
  };
  if (spp === 1) {
    // the hot path (every radiograph): the same arithmetic as stored(), inlined
    if (signed) for (let i = 0; i < n; i++) out[i] = (((words[i]! >>> shift) & mask) << signShift) >> signShift;
    else for (let i = 0; i < n; i++) out[i] = (words[i]! >>> shift) & mask;
    return { values: out };
  }
  const planar = decoded.planarConfiguration === 1;
  const sample = (pixel: number, c: number): number => stored(words[planar ? c * n + pixel : pixel * 3 + c]!);
  if (photometric === "YBR_FULL_422" && !encapsulated) {
    // native 4:2:2: each pair of pixels is Y1 Y2 Cb Cr (PS3.3 C.7.6.3.1.2)
    for (let i = 0; i < n; i++) out[i] = stored(words[(i >> 1) * 4 + (i & 1)]!);
    return { values: out, colour: `${photometric}: luminance (Y) channel` };
  }
  if (photometric.startsWith("YBR")) {
    for (let i = 0; i < n; i++) out[i] = sample(i, 0);
    return { values: out, colour: `${photometric}: luminance (Y) channel` };
  }
  if (photometric === "RGB") {
    for (let i = 0; i < n; i++) out[i] = Math.round(0.299 * sample(i, 0) + 0.587 * sample(i, 1) + 0.114 * sample(i, 2));
    return { values: out, colour: "RGB: Rec. 601 luma 0.299R+0.587G+0.114B, rounded" };
  }
  return undefined; // a colour space we do not reduce to gray: the caller names the file
}

function alignedView<T>(bytes: Uint8Array, width: number, make: (b: ArrayBuffer, o: number, l: number) => T): T {
  const aligned = bytes.byteOffset % width === 0 && bytes.buffer instanceof ArrayBuffer ? bytes : bytes.slice();
  return make(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / width);
}
