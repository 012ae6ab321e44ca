import { execFileSync } from "node:child_process";
import { basename, join } from "node:path";

/**
 * Independent reference decoders from Debian (dcmtk, GDCM): each writes an uncompressed
 * Explicit VR Little Endian copy of the file, whose Pixel Data we then read natively.
 */
export const REFERENCE_DECODER: Record<string, { tool: string; args: string[] }> = {
  "1.2.840.10008.1.2.4.50": { tool: "dcmdjpeg", args: ["+cn"] }, // +cn: keep YBR as encoded, like our decoder
  "1.2.840.10008.1.2.4.51": { tool: "dcmdjpeg", args: ["+cn"] },
  "1.2.840.10008.1.2.4.57": { tool: "dcmdjpeg", args: ["+cn"] },
  "1.2.840.10008.1.2.4.70": { tool: "dcmdjpeg", args: ["+cn"] },
  "1.2.840.10008.1.2.4.80": { tool: "dcmdjpls", args: [] },
  "1.2.840.10008.1.2.4.81": { tool: "dcmdjpls", args: [] },
  "1.2.840.10008.1.2.5": { tool: "dcmdrle", args: [] },
  "1.2.840.10008.1.2.4.90": { tool: "gdcmconv", args: ["--raw"] },
  "1.2.840.10008.1.2.4.91": { tool: "gdcmconv", args: ["--raw"] },
  "1.2.840.10008.1.2.1.99": { tool: "dcmconv", args: ["+te"] },
};

export function referenceDecode(path: string, transferSyntaxUid: string, outDir: string): { out: string; tool: string } {
  const ref = REFERENCE_DECODER[transferSyntaxUid];
  if (!ref) throw new Error(`no reference decoder for ${transferSyntaxUid}`);
  const out = join(outDir, `${ref.tool}-${basename(path)}`);
  execFileSync(ref.tool, [...ref.args, path, out], { stdio: ["ignore", "ignore", "pipe"] });
  return { out, tool: ref.tool };
}
