import type { FindingResult } from "../../inference/classifier.ts";
import { displayName } from "../../model/labels.ts";
import { bodyPartOrLaterality, resultBasis, sopCommonAndStudy } from "../common.ts";
import { softwareVersions } from "../equipment.ts";
import type { ResultInput } from "../input.ts";
import { codeSequence } from "../sr/content.ts";
import { CODES } from "../sr/codes.ts";
import { CAPTURE_MAX_SIZE, captureBackground, HEAT_OPACITY, renderCapture, type CaptureLine } from "./render.ts";

export const SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7";
export const SC_SERIES_NUMBER = 9002;
export const DISCLAIMER = "FOR PRIORITIZATION ONLY — NOT FOR DIAGNOSTIC USE";

/** Valid Patient Orientation (two CS values, e.g. "P\F"); anything else is written empty (Type 2C). */
function patientOrientation(value: unknown): string[] | "" {
  const v = typeof value === "string" ? value.split("\\") : Array.isArray(value) ? value : [];
  return v.length === 2 && v.every((s) => typeof s === "string" && /^[APRLHF]{1,3}$/.test(s)) ? (v as string[]) : "";
}

/** A probability as the result objects print it: "51.2%". */
export function percent(p: number): string {
  return `${(p * 100).toFixed(1)}%`;
}

/**
 * Secondary Capture images of the result: one per finding at or above its operating point (card order),
 * the source image with that finding's heatmap blended over it; or one summary image without overlay
 * when no finding is positive. Every image carries the disclaimer, the finding(s), probabilities and the
 * model's name and version burned in.
 *
 * Modality is OT, not the source's CR/DX: PS3.3 C.8.6.1 lets the SC Equipment Module name the source
 * equipment, but a CR/DX-labelled capture would be hung and counted like an acquired radiograph; OT
 * keeps the derived, non-diagnostic picture apart.
 */
export function buildHeatmapCaptures(input: ResultInput): Record<string, unknown>[] {
  const { source, image, result, uids } = input;
  const basis = resultBasis(input);
  const { ref, now } = basis;
  const card = result.card;
  const model = `${card.name} ${card.version}`;
  const positives = result.findings.filter((f) => f.positive);

  const pictures: { lines: CaptureLine[]; finding?: FindingResult; description: string }[] = positives.length
    ? positives.map((f) => ({
      finding: f,
      lines: [
        { text: DISCLAIMER, color: "#ffd21f" },
        { text: `${displayName(f.label)}: ${percent(f.probability)} (operating point ${percent(f.threshold)})`, color: "#ffffff" },
        { text: `Model: ${model}`, color: "#d0d0d0" },
      ],
      description: `class activation map of ${displayName(f.label)} (probability ${percent(f.probability)}) blended in jet colours, opacity ${HEAT_OPACITY} x heat`,
    }))
    : [{
      lines: [
        { text: DISCLAIMER, color: "#ffd21f" },
        { text: "No finding at or above its operating point", color: "#ffffff" },
        { text: `Highest: ${[...result.findings].sort((a, b) => b.probability - a.probability).slice(0, 3).map((f) => `${displayName(f.label)} ${percent(f.probability)}`).join(", ")}`, color: "#ffffff" },
        { text: `Model: ${model}`, color: "#d0d0d0" },
      ],
      description: "summary: no finding at or above its operating point, no overlay",
    }];

  const background = captureBackground(image);
  const lossy = source.LossyImageCompression === "01" || source.LossyImageCompression === "00" ? source.LossyImageCompression : undefined;
  return pictures.map((picture, k) => {
    const heatmap = picture.finding && result.heatmaps.find((h) => h.label === picture.finding!.label);
    const rendered = renderCapture(background, heatmap, picture.lines);
    return {
      ...sopCommonAndStudy(basis, card, SECONDARY_CAPTURE_IMAGE_STORAGE, uids.sopInstanceUidsSc(k + 1)),
      // General Series
      Modality: "OT",
      SeriesInstanceUID: uids.seriesInstanceUidSc,
      SeriesNumber: SC_SERIES_NUMBER,
      SeriesDescription: `AI heatmaps (${model})`.slice(0, 64),
      ...bodyPartOrLaterality(source),
      // General Equipment
      Manufacturer: card.manufacturer,
      ManufacturerModelName: card.name,
      SoftwareVersions: softwareVersions(card),
      // SC Equipment
      ConversionType: "WSD",
      SecondaryCaptureDeviceManufacturer: card.manufacturer,
      SecondaryCaptureDeviceManufacturerModelName: card.name,
      SecondaryCaptureDeviceSoftwareVersions: softwareVersions(card),
      // General Image
      InstanceNumber: k + 1,
      PatientOrientation: patientOrientation(source.PatientOrientation),
      ContentDate: now.date,
      ContentTime: now.time,
      ImageType: ["DERIVED", "SECONDARY"],
      DerivationDescription: `Source image ${ref.sopInstanceUid} downscaled to ${rendered.width}x${rendered.height} (longer side at most ${CAPTURE_MAX_SIZE}), ${picture.description}; disclaimer, finding and model burned in`,
      SourceImageSequence: [{
        ReferencedSOPClassUID: ref.sopClassUid,
        ReferencedSOPInstanceUID: ref.sopInstanceUid,
        PurposeOfReferenceCodeSequence: codeSequence(CODES.sourceImageForProcessing),
      }],
      BurnedInAnnotation: "YES",
      ...(lossy ? { LossyImageCompression: lossy } : {}),
      // SC Image
      DateOfSecondaryCapture: now.date,
      TimeOfSecondaryCapture: now.time,
      // Image Pixel
      SamplesPerPixel: 3,
      PhotometricInterpretation: "RGB",
      PlanarConfiguration: 0,
      Rows: rendered.height,
      Columns: rendered.width,
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      PixelRepresentation: 0,
      PixelData: [rendered.rgb.buffer],
      _vrMap: { PixelData: "OB" },
    };
  });
}
