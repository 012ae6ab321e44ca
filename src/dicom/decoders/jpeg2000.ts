import { runCodec } from "./codecs.ts";
import type { FrameDecoder } from "./types.ts";

const HTJ2K = new Set(["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"]);

/** JPEG 2000 (ISO 15444-1) lossless and lossy by OpenJPEG, and High-Throughput JPEG 2000 by OpenJPH, in dcmjs-codecs. */
export const jpeg2000Decoder: FrameDecoder = {
  name: "jpeg2000 (OpenJPEG/OpenJPH, dcmjs-codecs)",
  transferSyntaxes: {
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.91": "JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 (Lossless Only)",
    "1.2.840.10008.1.2.4.202": "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
    "1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000",
  },
  encapsulated: true,
  decode: (frame, pm, ts) => runCodec(HTJ2K.has(ts) ? "decodeHtJpeg2000" : "decodeJpeg2000", frame, pm),
};
