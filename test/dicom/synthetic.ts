import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { dcmjs } from "../../src/dicom/dcmjs.ts";

/**
 * Small DICOM files made with dcmjs for LUT unit tests: a secondary-capture-like header with the
 * given pixel module attributes and raw pixel words, written as Part 10 in `transferSyntaxUid`.
 */
export function writeSynthetic(
  dir: string,
  name: string,
  attrs: Record<string, unknown>,
  pixels: ArrayBufferView | ArrayBuffer[],
  transferSyntaxUid = "1.2.840.10008.1.2.1",
): string {
  const sop = `2.25.${Date.now()}${Math.floor(Math.random() * 1e6)}`;
  const dataset: Record<string, unknown> = {
    SOPClassUID: "1.2.840.10008.5.1.4.1.1.7",
    SOPInstanceUID: sop,
    Modality: "OT",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 0,
    ...attrs,
    PixelData: Array.isArray(pixels) ? pixels : pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.byteLength),
    _vrMap: { PixelData: (attrs.BitsAllocated ?? 16) === 8 ? "OB" : "OW" },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: sop,
    TransferSyntaxUID: transferSyntaxUid,
    ImplementationClassUID: "2.25.1",
  };
  const dict = new dcmjs.data.DicomDict(dcmjs.data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = dcmjs.data.DicomMetaDictionary.denaturalizeDataset(dataset);
  const path = join(dir, name);
  writeFileSync(path, Buffer.from(dict.write()));
  return path;
}

/** A LUT item (Modality or VOI LUT Sequence) with LUT Data as 16-bit OW words. */
export function lutItem(descriptor: [number, number, number], data: number[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { LUTDescriptor: descriptor, ...extra, LUTData: new Uint16Array(data).buffer, _vrMap: { LUTData: "OW" } };
}
