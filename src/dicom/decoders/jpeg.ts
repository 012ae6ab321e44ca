import { runCodec } from "./codecs.ts";
import type { FrameDecoder } from "./types.ts";

/**
 * JPEG (ITU T.81) baseline, extended 12-bit and lossless processes, decoded by libjpeg-turbo in
 * dcmjs-codecs. Colour space is left as encoded (YBR stays YBR) so the luminance is read directly.
 */
export const jpegDecoder: FrameDecoder = {
  name: "jpeg (libjpeg-turbo, dcmjs-codecs)",
  transferSyntaxes: {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 & 4)",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, SV1)",
  },
  encapsulated: true,
  decode: (frame, pm) => runCodec("decodeJpeg", frame, pm, { convertColorspaceToRgb: false }),
};
