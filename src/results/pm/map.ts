import { deriveUid, isValidUid } from "../../dicom/uid.ts";
import { upsampleHeatmap, type FindingResult, type Heatmap } from "../../inference/classifier.ts";
import { displayName } from "../../model/labels.ts";
import { bodyPartOrLaterality, resultBasis, sopCommonAndStudy, type ResultBasis } from "../common.ts";
import { equipmentAttributes } from "../equipment.ts";
import type { ResultInput } from "../input.ts";
import { DISCLAIMER, percent } from "../sc/capture.ts";
import { ResultInputError } from "../source.ts";
import { codeSequence, formatDecimalString } from "../sr/content.ts";
import { CODES } from "../sr/codes.ts";
import { mappedFindings, type MapSelection } from "./selection.ts";

export const PARAMETRIC_MAP_STORAGE = "1.2.840.10008.5.1.4.1.1.30";
export const PM_SERIES_NUMBER = 9003;
/** The map's longer side: GradCAM heat is a 7x7..10x10 grid upsampled, so finer adds bytes, not information. */
export const MAP_MAX_SIZE = 512;
/**
 * Heat h in [0,1] is stored as round(h · (MAP_LEVELS − 1)) in 16-bit unsigned pixels (PS3.3 C.8.32.2:
 * integer maps are 16 bits). 4096 levels keep the quantization step (1/4095) far below anything a reader
 * can see.
 */
export const MAP_LEVELS = 4096;

/** The map's matrix for a width x height source: the source's aspect, longer side at most MAP_MAX_SIZE. */
export function mapSize(width: number, height: number): { columns: number; rows: number } {
  const scale = Math.min(1, MAP_MAX_SIZE / Math.max(width, height));
  return { columns: Math.max(1, Math.round(width * scale)), rows: Math.max(1, Math.round(height * scale)) };
}

/** Heat (bilinear to the map's matrix) as stored pixel values 0..MAP_LEVELS-1. */
export function mapPixels(heatmap: Heatmap, columns: number, rows: number): Uint16Array<ArrayBuffer> {
  const heat = upsampleHeatmap(heatmap, columns, rows);
  const out = new Uint16Array(columns * rows);
  for (let i = 0; i < heat.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, heat[i]!)) * (MAP_LEVELS - 1));
  return out;
}

export interface MapGeometry {
  columns: number;
  rows: number;
  /** Row spacing \\ column spacing of the map in mm (see mapGeometry). */
  pixelSpacing: [string, string];
  frameOfReferenceUid: string;
  imagePositionPatient: string[];
  imageOrientationPatient: string[];
}

/** `count` finite decimals from a multi-valued DS attribute (dcmjs array or "a\\b" string), else undefined. */
function decimals(value: unknown, count: number): number[] | undefined {
  const v = typeof value === "string" ? value.split("\\") : Array.isArray(value) ? value : [];
  const n = v.map(Number);
  return n.length === count && n.every((x) => Number.isFinite(x)) ? n : undefined;
}

/** Pixel Spacing (row \\ column), both positive, else undefined. */
function pixelSpacing(value: unknown): [number, number] | undefined {
  const n = decimals(value, 2);
  return n && n[0]! > 0 && n[1]! > 0 ? [n[0]!, n[1]!] : undefined;
}

/**
 * Where the map lies. It covers the source image exactly, on a coarser matrix: each map pixel spans
 * (source rows / map rows) source rows, so its spacing is the source's Pixel Spacing scaled by that
 * factor, per axis. (Imager Pixel Spacing is at the detector, not what Pixel Measures means, so it is not
 * used.) A source without Pixel Spacing gets a nominal 1 mm per source pixel: the map still registers on
 * the source pixel for pixel, in proportion.
 *
 * The Parametric Map IOD requires a Frame of Reference and the plane of each frame (PS3.3 A.75.3). The
 * source's Frame of Reference, Image Position and Orientation are used where it has them all (and Pixel
 * Spacing, without which a position in its frame cannot be computed); a projection radiograph usually has
 * none, and then the map gets its own Frame of Reference (derived from the source
 * instance, so re-processing gives the same one) with the map's top left pixel at its origin and rows and
 * columns along its x and y axes: the plane is the image plane; the Derivation Image functional group and
 * the Common Instance Reference say which image that is.
 */
export function mapGeometry(source: Record<string, unknown>, width: number, height: number): MapGeometry {
  const { columns, rows } = mapSize(width, height);
  const spacing = pixelSpacing(source.PixelSpacing);
  const s = spacing ?? [1, 1];
  const forUid = typeof source.FrameOfReferenceUID === "string" && isValidUid(source.FrameOfReferenceUID) ? source.FrameOfReferenceUID : undefined;
  const position = decimals(source.ImagePositionPatient, 3);
  const orientation = decimals(source.ImageOrientationPatient, 6);
  const inSourceFrame = forUid && position && orientation && spacing ? { forUid, position, orientation } : undefined;
  return {
    columns,
    rows,
    pixelSpacing: [formatDecimalString((s[0] * height) / rows), formatDecimalString((s[1] * width) / columns)],
    frameOfReferenceUid: inSourceFrame?.forUid ?? deriveUid("cxr-triage-pm-frame-of-reference", String(source.SOPInstanceUID)),
    // The map's first pixel centre sits half a map pixel in from the source's corner, not on the source's first pixel centre.
    imagePositionPatient: (inSourceFrame ? firstMapPixelCentre(inSourceFrame.position, inSourceFrame.orientation, s, width / columns, height / rows) : [0, 0, 0]).map(formatDecimalString),
    imageOrientationPatient: (inSourceFrame?.orientation ?? [1, 0, 0, 0, 1, 0]).map(formatDecimalString),
  };
}

/** Patient position of the map's first pixel centre: the source's first pixel centre moved by (scale − 1)/2 source pixels along rows and columns. */
function firstMapPixelCentre(position: number[], orientation: number[], s: [number, number], sx: number, sy: number): number[] {
  const [rowSpacing, columnSpacing] = s;
  const dx = ((sx - 1) / 2) * columnSpacing, dy = ((sy - 1) / 2) * rowSpacing;
  return [0, 1, 2].map((i) => position[i]! + orientation[i]! * dx + orientation[3 + i]! * dy);
}

/**
 * One Parametric Map (PS3.3 A.75) per finding selected by `selection` (default: the positive ones, else
 * the most probable), in card order: the finding's class activation map over the source image, a Real
 * World Value Mapping from stored values to heat in [0,1] (quantity = the finding's code, unit UCUM "1"),
 * and a jet palette. Single frame; the map registers on the source through the Derivation Image
 * functional group (the source image) and, where the source has one, its Frame of Reference.
 */
export function buildParametricMaps(input: ResultInput, selection = input.mapSelection): { finding: FindingResult; dataset: Record<string, unknown> }[] {
  const basis = resultBasis(input);
  const geometry = mapGeometry(input.source, input.image.width, input.image.height);
  return mappedFindings(input.result, selection).map((f, k) => {
    const heatmap = input.result.heatmaps.find((h) => h.label === f.label);
    if (!heatmap) throw new ResultInputError(input.image.source.path || basis.ref.sopInstanceUid, `no heatmap for finding ${f.label}: its Parametric Map needs the class activation map`);
    return { finding: f, dataset: parametricMap(input, basis, geometry, f, heatmap, k + 1) };
  });
}

function parametricMap(input: ResultInput, basis: ResultBasis, geometry: MapGeometry, f: FindingResult, heatmap: Heatmap, instanceNumber: number): Record<string, unknown> {
  const { source, result, uids } = input;
  const { ref, now } = basis;
  const card = result.card;
  const model = `${card.name} ${card.version}`;
  const name = displayName(f.label);
  const { columns, rows } = geometry;
  const imageType = ["DERIVED", "PRIMARY", "STATIC", "NONE"];
  // Type 1 here: the source's "01" is kept (PS3.3 C.7.6.1.1.5); a source that does not state it counts as not lossy.
  const lossy = source.LossyImageCompression === "01" ? "01" : "00";
  const dimensionOrganizationUid = deriveUid("cxr-triage-pm-dimensions", uids.sopInstanceUidPm(f.label));

  return {
    ...sopCommonAndStudy(basis, card, PARAMETRIC_MAP_STORAGE, uids.sopInstanceUidPm(f.label)),
    // General Series + Parametric Map Series
    Modality: "OT",
    SeriesInstanceUID: uids.seriesInstanceUidPm,
    SeriesNumber: PM_SERIES_NUMBER,
    SeriesDescription: `AI heatmap maps (${model})`.slice(0, 64),
    ...bodyPartOrLaterality(source),
    // Frame of Reference
    FrameOfReferenceUID: geometry.frameOfReferenceUid,
    PositionReferenceIndicator: "",
    // General Equipment + Enhanced General Equipment
    ...equipmentAttributes(card),
    // Image Pixel
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: rows,
    Columns: columns,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 0,
    PixelData: [mapPixels(heatmap, columns, rows).buffer],
    // Parametric Map Image
    ImageType: imageType,
    ContentQualification: "PRODUCT",
    LossyImageCompression: lossy,
    ...(lossy === "01" && source.LossyImageCompressionRatio !== undefined ? { LossyImageCompressionRatio: source.LossyImageCompressionRatio } : {}),
    ...(lossy === "01" && source.LossyImageCompressionMethod !== undefined ? { LossyImageCompressionMethod: source.LossyImageCompressionMethod } : {}),
    BurnedInAnnotation: "NO",
    RecognizableVisualFeatures: "NO",
    PresentationLUTShape: "IDENTITY",
    // Grey levels, windowed over the whole heat range (Frame VOI LUT). A palette (Pixel Presentation
    // COLOR_RANGE) would colour it in viewers that ignore the mapping, but dciodvfy (dicom3tools 2022) then
    // fails the Stored Value Color Range Macro it requires (it checks the FD values as strings) and the
    // palette descriptors in the Image Pixel Module: see the README's conformance section.
    PixelPresentation: "MONOCHROME",
    _vrMap: { PixelData: "OW" },
    // Content Identification
    InstanceNumber: instanceNumber,
    ContentLabel: "HEATMAP",
    ContentDescription: DISCLAIMER,
    ContentCreatorName: [],
    // Multi-frame Functional Groups
    NumberOfFrames: 1,
    ContentDate: now.date,
    ContentTime: now.time,
    SharedFunctionalGroupsSequence: [{
      PixelMeasuresSequence: [{ PixelSpacing: geometry.pixelSpacing, SliceThickness: "1" }],
      PlanePositionSequence: [{ ImagePositionPatient: geometry.imagePositionPatient }],
      PlaneOrientationSequence: [{ ImageOrientationPatient: geometry.imageOrientationPatient }],
      PixelValueTransformationSequence: [{ RescaleIntercept: "0", RescaleSlope: "1", RescaleType: "US" }],
      DerivationImageSequence: [{
        DerivationDescription: `Class activation map (GradCAM) of ${name} from ${model}, probability ${percent(f.probability)}, operating point ${percent(f.threshold)}; upsampled to ${columns}x${rows} over the whole source image; ${DISCLAIMER}`.slice(0, 1024),
        DerivationCodeSequence: codeSequence(CODES.spatialResampling),
        SourceImageSequence: [{
          ReferencedSOPClassUID: ref.sopClassUid,
          ReferencedSOPInstanceUID: ref.sopInstanceUid,
          PurposeOfReferenceCodeSequence: codeSequence(CODES.sourceImageForProcessing),
          SpatialLocationsPreserved: "NO",
        }],
      }],
      RealWorldValueMappingSequence: [{
        RealWorldValueFirstValueMapped: 0,
        RealWorldValueLastValueMapped: MAP_LEVELS - 1,
        RealWorldValueIntercept: 0,
        RealWorldValueSlope: 1 / (MAP_LEVELS - 1),
        LUTExplanation: `${name} class activation (0..1), for prioritization only`.slice(0, 64),
        // SH (16 characters) cannot hold every label; the finding itself is the Quantity Definition's code.
        LUTLabel: "GradCAM heat",
        MeasurementUnitsCodeSequence: codeSequence(CODES.unitNone),
        QuantityDefinitionSequence: [{
          ValueType: "CODE",
          ConceptNameCodeSequence: codeSequence(CODES.quantity),
          ConceptCodeSequence: codeSequence(f.code),
        }],
      }],
      ParametricMapFrameTypeSequence: [{ FrameType: imageType }],
      FrameVOILUTSequence: [{ WindowCenter: formatDecimalString((MAP_LEVELS - 1) / 2), WindowWidth: formatDecimalString(MAP_LEVELS), VOILUTFunction: "LINEAR" }],
    }],
    PerFrameFunctionalGroupsSequence: [{
      FrameContentSequence: [{ StackID: "1", InStackPositionNumber: 1, DimensionIndexValues: [1] }],
    }],
    // Multi-frame Dimension: one frame, indexed by its stack position
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionIndexSequence: [{
      DimensionOrganizationUID: dimensionOrganizationUid,
      DimensionIndexPointer: 0x00209057, // In-Stack Position Number
      FunctionalGroupPointer: 0x00209111, // Frame Content Sequence
      DimensionDescriptionLabel: "Stack position",
    }],
    // Acquisition Context: nothing acquired
    AcquisitionContextSequence: [],
    // Common Instance Reference: the source lives in this study
    ReferencedSeriesSequence: [{
      SeriesInstanceUID: ref.seriesInstanceUid,
      ReferencedInstanceSequence: [{ ReferencedSOPClassUID: ref.sopClassUid, ReferencedSOPInstanceUID: ref.sopInstanceUid }],
    }],
  };
}
