import { jpegDecoder } from "./jpeg.ts";
import { jpegLsDecoder } from "./jpeg-ls.ts";
import { jpeg2000Decoder } from "./jpeg2000.ts";
import { nativeDecoder } from "./native.ts";
import { rleDecoder } from "./rle.ts";
import type { FrameDecoder } from "./types.ts";

export { initCodecs } from "./codecs.ts";
export type { DecodedFrame, FrameDecoder } from "./types.ts";

export const DECODERS: readonly FrameDecoder[] = [nativeDecoder, rleDecoder, jpegDecoder, jpegLsDecoder, jpeg2000Decoder];

/** The decoder for a Transfer Syntax UID, or undefined when none of ours handles it. */
export function decoderFor(transferSyntaxUid: string): FrameDecoder | undefined {
  return DECODERS.find((d) => transferSyntaxUid in d.transferSyntaxes);
}

/** The syntax's name from the decoders' tables (for messages), or the UID itself. */
export function transferSyntaxName(transferSyntaxUid: string): string {
  return decoderFor(transferSyntaxUid)?.transferSyntaxes[transferSyntaxUid] ?? transferSyntaxUid;
}
