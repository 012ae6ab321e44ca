/**
 * DICOM core shared by the service, training and audits.
 *
 * Reading (no pixel decoding):
 *   readDicom(path, { withPixelData? }) → DicomFile { path, format, transferSyntaxUid, meta, dataset, dict }
 *     Part 10, Part 10 without preamble, and ACR-NEMA style bare datasets (implicit/explicit VR LE);
 *     deflated datasets are inflated by dcmjs. `dataset` is dcmjs-naturalized (keywords as keys).
 *   parseDicom(bytes, pathForErrors, options) — same from memory.
 *   dcmjs — the typed dcmjs module (use it instead of importing "dcmjs" directly).
 *
 * Pixels:
 *   readPixelModule(file) → PixelModule (rows, columns, bits, photometric, ...; validated)
 *   decodeStoredFrame(file, frame = 0) → StoredFrame { values: Int32Array stored values, ... }
 *     (awaits the WASM codecs; decodeStoredFrameSync after `await initCodecs()`)
 *   decoderFor(tsUid) / DECODERS — one FrameDecoder per transfer-syntax family in ./decoders/.
 *   applyPresentationLuts(storedFrame, dataset, path) → { data: Float32Array [0,1], steps }
 *     PS3.3 order: Modality LUT → VOI → inversion; the single steps are exported from ./lut.ts.
 *   For a PresentationImage use loadPresentationImage / presentationFromDicom in src/image/.
 *
 * Errors: everything throws DicomReadError(path, reason, { tag?, transferSyntaxUid? }).
 */
export { dcmjs } from "./dcmjs.ts";
export type { DcmjsDict, DcmjsElement } from "./dcmjs.ts";
export { DicomReadError } from "./errors.ts";
export { readDicom, parseDicom, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN } from "./read.ts";
export type { DicomFile, DicomFileFormat, ReadDicomOptions } from "./read.ts";
export { readPixelModule, firstValue, numberValue, stringValue } from "./pixel-module.ts";
export type { PixelModule } from "./pixel-module.ts";
export { decodeStoredFrame, decodeStoredFrameSync } from "./stored.ts";
export type { StoredFrame } from "./stored.ts";
export { DECODERS, decoderFor, initCodecs, transferSyntaxName } from "./decoders/index.ts";
export type { DecodedFrame, FrameDecoder } from "./decoders/index.ts";
export {
  applyPresentationLuts,
  modalityTransform,
  voiTransform,
  inversionFor,
  windowLinear,
  windowLinearExact,
  windowSigmoid,
} from "./lut.ts";
export type { PresentationSteps } from "./lut.ts";
