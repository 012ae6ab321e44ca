/**
 * The result objects of one processed image (issues #4, #17): TID 1500 SR, heatmap Secondary Captures, Parametric Maps,
 * their UIDs, the SR reader, and the one-call writer used by `cxr infer --dicom` and the pipeline.
 */
export { buildStructuredReport, COMPREHENSIVE_3D_SR_STORAGE } from "./sr/document.ts";
export { buildHeatmapCaptures, SECONDARY_CAPTURE_IMAGE_STORAGE, DISCLAIMER } from "./sc/capture.ts";
export { readAiResultsSr, SrReadError, type AiResultsSr, type SrFinding } from "./sr/read.ts";
export { deriveResultUids, type ResultInput, type ResultUids } from "./input.ts";
export { writeResultObjects, writeDicomResults, type WriteResultObjectsOptions, type WrittenResultObjects } from "./write.ts";
export { copyPatientAndStudy, ResultInputError } from "./source.ts";
export { buildParametricMaps, PARAMETRIC_MAP_STORAGE } from "./pm/map.ts";
export { readParametricMap, ParametricMapReadError, type ParametricMapRead } from "./pm/read.ts";
export { mappedFindings, MAP_SELECTIONS, DEFAULT_MAP_SELECTION, type MapSelection } from "./pm/selection.ts";
