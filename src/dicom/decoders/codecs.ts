import { createRequire } from "node:module";
import type * as DcmjsCodecs from "dcmjs-codecs";
import type { PixelModule } from "../pixel-module.ts";
import { frameByteLength, type DecodedFrame } from "./types.ts";

const require = createRequire(import.meta.url);
const codecs = require("dcmjs-codecs") as typeof DcmjsCodecs;

let ready: Promise<void> | undefined;

/**
 * The WASM codecs (libjpeg-turbo, CharLS, OpenJPEG, RLE) must be instantiated once per process
 * before any compressed frame is decoded; loadPresentationImage awaits this, sync callers must
 * await it themselves first.
 */
export function initCodecs(): Promise<void> {
  ready ??= codecs.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
  return ready;
}

type CodecCall = "decodeRle" | "decodeJpeg" | "decodeJpegLs" | "decodeJpeg2000" | "decodeHtJpeg2000";

/** Runs one WASM decode and checks that the codec delivered exactly one frame of the header's geometry. */
export function runCodec(call: CodecCall, frame: Uint8Array, pm: PixelModule, parameters: Record<string, unknown> = {}): DecodedFrame {
  if (!codecs.NativeCodecs.isInitialized()) throw new Error("WASM codecs are not initialized (await initCodecs() first)");
  const context = new codecs.Context({
    width: pm.columns,
    height: pm.rows,
    bitsAllocated: pm.bitsAllocated,
    bitsStored: pm.bitsStored,
    samplesPerPixel: pm.samplesPerPixel,
    pixelRepresentation: pm.pixelRepresentation,
    planarConfiguration: pm.planarConfiguration,
    photometricInterpretation: pm.photometricInterpretation,
    encodedBuffer: frame,
  });
  const out = codecs.NativeCodecs[call](context, parameters);
  const bytes = out.getDecodedBuffer();
  if (!bytes) throw new Error(`${call} returned no pixels`);
  const expected = frameByteLength(pm);
  if (bytes.length !== expected) {
    throw new Error(`${call} delivered ${bytes.length} bytes, the header (${pm.columns}x${pm.rows}, ${pm.samplesPerPixel} sample(s), ${pm.bitsAllocated} bits) needs ${expected}`);
  }
  const pc = out.getPlanarConfiguration();
  return {
    bytes,
    photometricInterpretation: out.getPhotometricInterpretation() ?? pm.photometricInterpretation,
    planarConfiguration: pc === 1 ? 1 : 0,
  };
}
