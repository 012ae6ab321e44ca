/**
 * Presentation images and the model input, shared by inference, training and audits.
 *
 *   loadPresentationImage(path) → PresentationImage   DICOM (any supported syntax) or PNG/JPEG, by content
 *   presentationFromDicom(file: DicomFile, frame = 0)  when the dataset is already read (service path)
 *   presentationFromStoredFrame(file, storedFrame)     when the frame is already decoded (cxr inspect)
 *   sniffImageKind(path) → "dicom" | "png" | "jpeg"     by content, as loadPresentationImage decides
 *   presentationFromRaster(path, "png" | "jpeg")       gray / 255 (or / 65535 for 16-bit PNG)
 *   toModelTensor(img, spec: InputSpec) → Float32Array 3*size*size (NCHW or NHWC)
 *   toModelTensorBatch(imgs, spec)                     N images in one buffer
 *   resizeGray(data, w, h, outW, outH)                 anti-aliased Lanczos-3, float32, clamped to [0,1]
 *   toUint16 / encodePng16 / writePng16                16-bit gray PNG, 0..65535 = VOI output range after inversion
 *
 * PresentationImage.data is in [0,1], 0 = black on screen; `steps` records Modality/VOI/inversion.
 */
export { loadPresentationImage, presentationFromDicom, presentationFromRaster, presentationFromStoredFrame, sniffImageKind } from "./presentation.ts";
export type { PresentationImage } from "./presentation.ts";
export { toModelTensor, toModelTensorBatch } from "./tensor.ts";
export type { InputSpec } from "./tensor.ts";
export { resizeGray } from "./resize.ts";
export { toUint16, encodePng16, writePng16 } from "./png16.ts";
