import { runCodec } from "./codecs.ts";
import type { FrameDecoder } from "./types.ts";

/** RLE Lossless (PS3.5 G), decoded by dcmjs-codecs' WASM RLE codec. */
export const rleDecoder: FrameDecoder = {
  name: "rle (dcmjs-codecs)",
  transferSyntaxes: { "1.2.840.10008.1.2.5": "RLE Lossless" },
  encapsulated: true,
  decode: (frame, pm) => runCodec("decodeRle", frame, pm),
};
