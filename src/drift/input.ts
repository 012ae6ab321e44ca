import type { InstanceHeader } from "../store/types.ts";
import type { InputProperties } from "./monitor.ts";

function firstNumber(v: unknown): number | undefined {
  const n = Number(Array.isArray(v) ? v[0] : v);
  return v === undefined || v === null || v === "" || !Number.isFinite(n) || n <= 0 ? undefined : n;
}

/**
 * The input properties drift monitoring follows: manufacturer and modality from the instance header
 * kept at intake, pixel spacing and bits stored from the decoded file. Pixel Spacing is used where
 * present, else Imager Pixel Spacing (what most CR/DX files carry): the row spacing in mm.
 */
export function inputProperties(header: InstanceHeader, dataset: Record<string, unknown>): InputProperties {
  const spacing = firstNumber(dataset.PixelSpacing) ?? firstNumber(dataset.ImagerPixelSpacing);
  const bits = firstNumber(dataset.BitsStored);
  return {
    ...(header.manufacturer && { manufacturer: header.manufacturer }),
    ...(header.modality && { modality: header.modality }),
    ...(spacing !== undefined && { pixelSpacing: spacing }),
    ...(bits !== undefined && { bitsStored: bits }),
  };
}
