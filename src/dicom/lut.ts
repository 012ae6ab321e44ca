import { DicomReadError } from "./errors.ts";
import { firstValue, numberValue, stringValue, type PixelModule } from "./pixel-module.ts";
import type { StoredFrame } from "./stored.ts";

/**
 * The grayscale pipeline of PS3.3 C.11 (Figure C.11-1), in its order:
 *   stored value → Modality LUT (C.11.1: Modality LUT Sequence, else Rescale Slope/Intercept)
 *   → VOI (C.11.2: VOI LUT Sequence, else the first Window Center/Width with its VOI LUT Function,
 *     else the full range of modality values) → inversion (MONOCHROME1 or Presentation LUT Shape
 *     INVERSE, C.11.6), applied once, after VOI.
 * Each step is a pure function of the header so it can be tested against the standard's formulas.
 */
export interface PresentationSteps {
  modality: string;
  voi: string;
  inversion: string;
}

export interface ModalityTransform {
  description: string;
  apply(stored: number): number;
  /** Range of modality values the transform produces from stored values in [lo, hi]. */
  outputRange(lo: number, hi: number): [number, number];
}

/** Output of VOI in [0,1] (ymin = 0, ymax = 1 in the C.11.2.1.2 formulas). */
export interface VoiTransform {
  description: string;
  apply(modalityValue: number): number;
}

export interface LookupTable {
  /** First stored/modality value mapped (LUT Descriptor value 2). */
  firstMapped: number;
  data: Float64Array;
  /** Bits per entry (LUT Descriptor value 3). */
  bits: number;
}

function lookup(lut: LookupTable, x: number): number {
  const i = Math.round(x) - lut.firstMapped;
  return lut.data[i < 0 ? 0 : i >= lut.data.length ? lut.data.length - 1 : i]!;
}

/** Parses a LUT item (Modality or VOI LUT Sequence item): LUT Descriptor (0028,3002) and LUT Data (0028,3006). */
export function parseLookupTable(item: Record<string, unknown>, path: string, sequence: string, signedInput: boolean): LookupTable {
  const fail = (why: string): never => {
    throw new DicomReadError(path, `${sequence} item: ${why}`, { tag: sequence === "Modality LUT Sequence" ? "(0028,3000)" : "(0028,3010)" });
  };
  const d = item.LUTDescriptor;
  const desc = (Array.isArray(d) ? d : []).map(Number);
  if (desc.length !== 3 || desc.some((v) => !Number.isFinite(v))) fail("LUT Descriptor (0028,3002) must hold 3 numbers");
  const entries = desc[0] === 0 ? 65536 : desc[0]!;
  // Value 2 is US or SS following the Pixel Representation; a reader without that context gives it as unsigned.
  const firstMapped = signedInput && desc[1]! >= 32768 ? desc[1]! - 65536 : desc[1]!;
  const bits = desc[2]!;
  if (bits < 1 || bits > 16) fail(`LUT Descriptor bits per entry is ${bits}`);
  const raw = item.LUTData;
  let data: Float64Array | undefined;
  if (Array.isArray(raw) && raw.every((v) => typeof v === "number")) data = Float64Array.from(raw as number[]);
  else {
    const buf = raw instanceof ArrayBuffer ? raw : Array.isArray(raw) && raw[0] instanceof ArrayBuffer ? (raw[0] as ArrayBuffer) : undefined;
    if (buf && buf.byteLength >= 2 * entries) data = Float64Array.from(new Uint16Array(buf, 0, entries));
    else if (buf && bits <= 8 && buf.byteLength >= entries) data = Float64Array.from(new Uint8Array(buf, 0, entries));
  }
  if (!data) return fail("LUT Data (0028,3006) is missing or not readable");
  if (data.length !== entries) fail(`LUT Data has ${data.length} entries, LUT Descriptor says ${entries}`);
  return { firstMapped, data, bits };
}

export function modalityTransform(ds: Record<string, unknown>, pm: PixelModule, path: string): ModalityTransform {
  const seq = ds.ModalityLUTSequence;
  if (Array.isArray(seq) && seq.length > 0) {
    const lut = parseLookupTable(seq[0] as Record<string, unknown>, path, "Modality LUT Sequence", pm.pixelRepresentation === 1);
    const type = stringValue(seq[0] as Record<string, unknown>, "ModalityLUTType");
    return {
      description: `Modality LUT Sequence (${lut.data.length} entries from ${lut.firstMapped}, ${lut.bits} bits${type ? `, ${type}` : ""})`,
      apply: (x) => lookup(lut, x),
      outputRange: (lo, hi) => {
        let min = Infinity;
        let max = -Infinity;
        const from = Math.max(0, Math.round(lo) - lut.firstMapped);
        const to = Math.min(lut.data.length - 1, Math.round(hi) - lut.firstMapped);
        for (let i = from; i <= to; i++) {
          min = Math.min(min, lut.data[i]!);
          max = Math.max(max, lut.data[i]!);
        }
        // stored values entirely below/above the table map to its first/last entry
        if (from > to) min = max = lut.data[Math.round(lo) < lut.firstMapped ? 0 : lut.data.length - 1]!;
        return [min, max];
      },
    };
  }
  const slope = numberValue(ds, "RescaleSlope");
  const intercept = numberValue(ds, "RescaleIntercept");
  if (slope === undefined && intercept === undefined) {
    return { description: "identity (no Modality LUT)", apply: (x) => x, outputRange: (lo, hi) => [lo, hi] };
  }
  const m = slope ?? 1;
  const b = intercept ?? 0;
  if (m === 0) throw new DicomReadError(path, "Rescale Slope is 0: every pixel would have the same value", { tag: "(0028,1053)" });
  return {
    description: `rescale ${m}/${b}`,
    apply: (x) => m * x + b,
    outputRange: (lo, hi) => (m > 0 ? [m * lo + b, m * hi + b] : [m * hi + b, m * lo + b]),
  };
}

/** PS3.3 C.11.2.1.2 window functions, with ymin = 0 and ymax = 1. */
export function windowLinear(x: number, c: number, w: number): number {
  const lo = c - 0.5 - (w - 1) / 2;
  const hi = c - 0.5 + (w - 1) / 2;
  if (x <= lo) return 0;
  if (x > hi) return 1;
  return (x - (c - 0.5)) / (w - 1) + 0.5;
}

export function windowLinearExact(x: number, c: number, w: number): number {
  if (x <= c - w / 2) return 0;
  if (x > c + w / 2) return 1;
  return (x - c) / w + 0.5;
}

export function windowSigmoid(x: number, c: number, w: number): number {
  return 1 / (1 + Math.exp((-4 * (x - c)) / w));
}

export function voiTransform(ds: Record<string, unknown>, modalityRange: [number, number], path: string, signedInput: boolean): VoiTransform {
  const seq = ds.VOILUTSequence;
  if (Array.isArray(seq) && seq.length > 0) {
    const lut = parseLookupTable(seq[0] as Record<string, unknown>, path, "VOI LUT Sequence", signedInput);
    const top = 2 ** lut.bits - 1;
    const explanation = stringValue(seq[0] as Record<string, unknown>, "LUTExplanation");
    return {
      description: `VOI LUT Sequence (${lut.data.length} entries from ${lut.firstMapped}, ${lut.bits} bits${explanation ? `, ${explanation}` : ""})`,
      apply: (x) => lookup(lut, x) / top,
    };
  }
  const c = numberValue(ds, "WindowCenter");
  const w = numberValue(ds, "WindowWidth");
  const fn = (stringValue(ds, "VOILUTFunction") ?? "LINEAR").toUpperCase();
  const [lo, hi] = modalityRange;
  const fullRange = (why: string): VoiTransform => {
    if (!(hi > lo)) throw new DicomReadError(path, `modality value range [${lo}, ${hi}] is empty; nothing to display`);
    return { description: `full range of modality values ${lo}..${hi}${why}`, apply: (x) => (x <= lo ? 0 : x >= hi ? 1 : (x - lo) / (hi - lo)) };
  };
  if (c === undefined || w === undefined) return fullRange(" (no VOI LUT or window)");
  const several = Array.isArray(ds.WindowCenter) && ds.WindowCenter.length > 1 ? " (first of several)" : "";
  if (fn === "LINEAR") {
    if (w < 1) return fullRange(` (Window Width ${w} < 1 is invalid for LINEAR)`);
    return { description: `window ${c}/${w} LINEAR${several}`, apply: (x) => windowLinear(x, c, w) };
  }
  if (fn === "LINEAR_EXACT" || fn === "SIGMOID") {
    if (w <= 0) return fullRange(` (Window Width ${w} <= 0 is invalid for ${fn})`);
    const f = fn === "SIGMOID" ? windowSigmoid : windowLinearExact;
    return { description: `window ${c}/${w} ${fn}${several}`, apply: (x) => f(x, c, w) };
  }
  throw new DicomReadError(path, `VOI LUT Function ${fn} is not defined (LINEAR, LINEAR_EXACT or SIGMOID)`, { tag: "(0028,1056)" });
}

export function inversionFor(ds: Record<string, unknown>, pm: PixelModule): { invert: boolean; description: string } {
  const shape = stringValue(ds, "PresentationLUTShape")?.toUpperCase();
  if (pm.photometricInterpretation === "MONOCHROME1") {
    return { invert: true, description: `MONOCHROME1 inverted${shape ? ` (Presentation LUT Shape ${shape})` : ""}` };
  }
  if (shape === "INVERSE") return { invert: true, description: "Presentation LUT Shape INVERSE" };
  return { invert: false, description: "none" };
}

/**
 * Stored values → presentation values in [0,1]. For Bits Stored <= 16 the whole chain is
 * precomputed once per possible stored value (exactly the same arithmetic, one table lookup per pixel).
 */
export function applyPresentationLuts(frame: StoredFrame, ds: Record<string, unknown>, path: string): { data: Float32Array; steps: PresentationSteps } {
  const pm = frame.pixelModule;
  const values = frame.values;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === max) {
    throw new DicomReadError(path, `pixel data is constant (every stored value is ${min}); refusing a blank image`, { tag: "(7FE0,0010)" });
  }
  const modality = modalityTransform(ds, pm, path);
  // "full range" VOI uses the modality values present in this frame, so an image using few of its
  // Bits Stored (e.g. 12-bit data in 16) is not rendered nearly black.
  const voi = voiTransform(ds, modality.outputRange(min, max), path, pm.pixelRepresentation === 1);
  const inversion = inversionFor(ds, pm);
  const present = (stored: number): number => {
    const y = voi.apply(modality.apply(stored));
    return inversion.invert ? 1 - y : y;
  };
  const data = new Float32Array(values.length);
  if (pm.bitsStored <= 16) {
    const table = new Float32Array(max - min + 1);
    for (let v = min; v <= max; v++) table[v - min] = present(v);
    for (let i = 0; i < values.length; i++) data[i] = table[values[i]! - min]!;
  } else {
    for (let i = 0; i < values.length; i++) data[i] = present(values[i]!);
  }
  return { data, steps: { modality: modality.description, voi: voi.description, inversion: inversion.description } };
}

