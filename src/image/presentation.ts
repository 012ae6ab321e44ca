import { open } from "node:fs/promises";
import sharp from "sharp";
import { DicomReadError } from "../dicom/errors.ts";
import { applyPresentationLuts } from "../dicom/lut.ts";
import { readDicom, type DicomFile } from "../dicom/read.ts";
import { decodeStoredFrame, type StoredFrame } from "../dicom/stored.ts";

export interface PresentationImage {
  width: number;
  height: number;
  /** Presentation values in [0,1] (0 = black on screen): after Modality LUT, VOI, inversion. Row-major. */
  data: Float32Array;
  source: { path: string; kind: "dicom" | "png" | "jpeg" };
  /** What was applied, for `cxr inspect` and audits, e.g. { modality: "rescale 1/0", voi: "window 511/1024 LINEAR", inversion: "none" } */
  steps: { modality: string; voi: string; inversion: string };
}

/** DICOM (Part 10 or bare dataset) or PNG/JPEG, told apart by content, not by file name. */
export async function loadPresentationImage(path: string): Promise<PresentationImage> {
  const kind = await sniffImageKind(path);
  if (kind === "dicom") return presentationFromDicom(readDicom(path));
  return presentationFromRaster(path, kind);
}

/** Frame `frame` of an already-read DICOM file through decode and the PS3.3 LUT pipeline. */
export async function presentationFromDicom(file: DicomFile, frame = 0): Promise<PresentationImage> {
  return presentationFromStoredFrame(file, await decodeStoredFrame(file, frame));
}

/** An already-decoded frame of `file` through the PS3.3 LUT pipeline; a colour-to-gray reduction is named first in steps.modality. */
export function presentationFromStoredFrame(file: DicomFile, stored: StoredFrame): PresentationImage {
  const { data, steps } = applyPresentationLuts(stored, file.dataset, file.path);
  if (stored.colour) steps.modality = `${stored.colour}; ${steps.modality}`;
  return { width: stored.width, height: stored.height, data, source: { path: file.path, kind: "dicom" }, steps };
}

/**
 * PNG/JPEG: gray values / full scale (255, or 65535 for 16-bit PNG). A colour file is reduced to
 * luminance by libvips. These files are already presentation values, so no LUT is applied.
 */
export async function presentationFromRaster(path: string, kind: "png" | "jpeg"): Promise<PresentationImage> {
  try {
    const image = sharp(path);
    const meta = await image.metadata();
    const sixteen = meta.depth === "ushort";
    const { data, info } = await image
      .removeAlpha()
      .toColourspace(sixteen ? "grey16" : "b-w")
      .raw({ depth: sixteen ? "ushort" : "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1) throw new Error(`expected 1 gray channel after conversion, got ${info.channels}`);
    const n = info.width * info.height;
    const full = sixteen ? 65535 : 255;
    const samples = sixteen ? new Uint16Array(data.buffer, data.byteOffset, n) : data;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = samples[i]! / full;
    if (out.every((v) => v === out[0])) throw new Error(`image is constant (every value ${out[0]}); refusing a blank image`);
    const colour = meta.channels && meta.channels >= 3 ? "colour reduced to luminance; " : "";
    return {
      width: info.width,
      height: info.height,
      data: out,
      source: { path, kind },
      steps: { modality: `${colour}${kind.toUpperCase()} ${sixteen ? 16 : 8}-bit gray / ${full}`, voi: "none (already presentation values)", inversion: "none" },
    };
  } catch (err) {
    throw new DicomReadError(path, `${kind.toUpperCase()} cannot be read: ${(err as Error).message}`);
  }
}

/** PNG and JPEG by their signatures; anything else is read as DICOM (which names what is wrong with it). */
export async function sniffImageKind(path: string): Promise<"dicom" | "png" | "jpeg"> {
  let head: Buffer;
  try {
    const fh = await open(path, "r");
    try {
      head = Buffer.alloc(8);
      await fh.read(head, 0, 8, 0);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new DicomReadError(path, `cannot read file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (head[0] === 0x89 && head.toString("latin1", 1, 4) === "PNG") return "png";
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "jpeg";
  return "dicom";
}
