import { DicomReadError } from "./errors.ts";
import type { DicomFile } from "./read.ts";

/** The Image Pixel Module attributes (PS3.3 C.7.6.3) that decoding and the LUTs depend on. */
export interface PixelModule {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 0 unsigned, 1 two's complement */
  pixelRepresentation: 0 | 1;
  /** 0 colour-by-pixel (interleaved), 1 colour-by-plane */
  planarConfiguration: 0 | 1;
  numberOfFrames: number;
}

const TAGS = {
  Rows: "(0028,0010)",
  Columns: "(0028,0011)",
  SamplesPerPixel: "(0028,0002)",
  PhotometricInterpretation: "(0028,0004)",
  BitsAllocated: "(0028,0100)",
  BitsStored: "(0028,0101)",
  HighBit: "(0028,0102)",
  PixelRepresentation: "(0028,0103)",
  PlanarConfiguration: "(0028,0006)",
  NumberOfFrames: "(0028,0008)",
} as const;

/** A naturalized attribute's first value (dcmjs gives single values as scalars, multi-values as arrays). */
export function firstValue(ds: Record<string, unknown>, keyword: string): unknown {
  const v = ds[keyword];
  return Array.isArray(v) ? v[0] : v;
}

export function numberValue(ds: Record<string, unknown>, keyword: string): number | undefined {
  const v = firstValue(ds, keyword);
  if (v === undefined || v === null || v === "") return undefined;
  const n = typeof v === "number" ? v : Number(String(v).trim());
  return Number.isFinite(n) ? n : undefined;
}

export function stringValue(ds: Record<string, unknown>, keyword: string): string | undefined {
  const v = firstValue(ds, keyword);
  if (v === undefined || v === null) return undefined;
  const s = String(v).replace(/\0/g, "").trim();
  return s === "" ? undefined : s;
}

/** Reads and checks the pixel module; a missing or impossible value is an error naming its tag. */
export function readPixelModule(file: DicomFile): PixelModule {
  const ds = file.dataset;
  const fail = (keyword: keyof typeof TAGS, why: string): never => {
    throw new DicomReadError(file.path, `${keyword} ${why}`, { tag: TAGS[keyword], transferSyntaxUid: file.transferSyntaxUid });
  };
  if (ds.PixelData === undefined && ds.Rows === undefined) {
    const what = [stringValue(ds, "Modality"), stringValue(ds, "SOPClassUID")].filter(Boolean).join(", ");
    throw new DicomReadError(file.path, `not an image: no Pixel Data${what ? ` (${what})` : ""}`, { tag: "(7FE0,0010)", transferSyntaxUid: file.transferSyntaxUid });
  }
  const required = (keyword: keyof typeof TAGS): number => {
    const n = numberValue(ds, keyword);
    if (n === undefined) return fail(keyword, "is missing");
    if (!Number.isInteger(n) || n < 0) return fail(keyword, `has an invalid value ${String(firstValue(ds, keyword))}`);
    return n;
  };
  const rows = required("Rows");
  const columns = required("Columns");
  if (rows === 0 || columns === 0) fail(rows === 0 ? "Rows" : "Columns", "is 0");
  const samplesPerPixel = numberValue(ds, "SamplesPerPixel") ?? 1;
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) fail("SamplesPerPixel", `is ${samplesPerPixel}; only 1 or 3 are defined for images`);
  const photometricInterpretation = stringValue(ds, "PhotometricInterpretation") ?? fail("PhotometricInterpretation", "is missing");
  const bitsAllocated = required("BitsAllocated");
  if (![8, 16, 32].includes(bitsAllocated)) fail("BitsAllocated", `is ${bitsAllocated}; only 8, 16 and 32 are supported for images`);
  const bitsStored = numberValue(ds, "BitsStored") ?? bitsAllocated;
  if (!Number.isInteger(bitsStored) || bitsStored < 1 || bitsStored > bitsAllocated) {
    fail("BitsStored", `is ${bitsStored}, outside 1..Bits Allocated (${bitsAllocated})`);
  }
  const highBit = numberValue(ds, "HighBit") ?? bitsStored - 1;
  if (highBit < bitsStored - 1 || highBit > bitsAllocated - 1) {
    fail("HighBit", `is ${highBit}, inconsistent with Bits Stored ${bitsStored} and Bits Allocated ${bitsAllocated}`);
  }
  const pr = numberValue(ds, "PixelRepresentation") ?? 0;
  if (pr !== 0 && pr !== 1) fail("PixelRepresentation", `is ${pr}; must be 0 or 1`);
  if (pr === 0 && bitsStored === 32) fail("BitsStored", "is 32 with unsigned pixels; values above 2^31 are not supported");
  const pc = numberValue(ds, "PlanarConfiguration") ?? 0;
  if (pc !== 0 && pc !== 1) fail("PlanarConfiguration", `is ${pc}; must be 0 or 1`);
  const numberOfFrames = numberValue(ds, "NumberOfFrames") ?? 1;
  if (!Number.isInteger(numberOfFrames) || numberOfFrames < 1) fail("NumberOfFrames", `is ${String(firstValue(ds, "NumberOfFrames"))}`);
  return {
    rows,
    columns,
    samplesPerPixel,
    photometricInterpretation,
    bitsAllocated,
    bitsStored,
    highBit,
    pixelRepresentation: pr as 0 | 1,
    planarConfiguration: pc as 0 | 1,
    numberOfFrames,
  };
}
