import { runCodec } from "./codecs.ts";
import type { FrameDecoder } from "./types.ts";

/** JPEG-LS (ITU T.87) lossless and near-lossless, decoded by CharLS in dcmjs-codecs. */
export const jpegLsDecoder: FrameDecoder = {
  name: "jpeg-ls (CharLS, dcmjs-codecs)",
  transferSyntaxes: {
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Lossy (Near-Lossless)",
  },
  encapsulated: true,
  decode: (frame, pm) => runCodec("decodeJpegLs", frame, pm),
};
