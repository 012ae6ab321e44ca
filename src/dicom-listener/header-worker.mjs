// Parses received headers with dcmjs off the main thread (header-parser.ts), so that no single
// instance can hold up the service while it is parsed; the main thread kills this worker when a
// parse runs over its time budget, and its heap is capped (resourceLimits). Plain JavaScript so
// that it starts without the TypeScript loader the main thread uses. The parse is that of
// src/dicom/read.ts's parseDicom(…, { withPixelData: false }): the header up to the Pixel Data.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parentPort } from "node:worker_threads";

const dcmjs = createRequire(import.meta.url)("dcmjs");
dcmjs.log.setLevel("silent");
dcmjs.log.getLogger("validation.dcmjs").setLevel("silent");

function parseHeader(bytes) {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const file = dcmjs.data.DicomMessage.readFile(buffer, { ignoreErrors: true, untilTag: "7FE00010", includeUntilTagValue: false });
  // with untilTag dcmjs still lists (7FE0,0010), with a placeholder value
  delete file.dict["7FE00010"];
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(file.dict);
}

parentPort.postMessage({ ready: true });
parentPort.on("message", (msg) => {
  try {
    const dataset = parseHeader(msg.bytes ?? new Uint8Array(readFileSync(msg.path)));
    // As JSON: dcmjs's values (PN and friends) are objects structured cloning refuses; binary
    // values (OB, OW, UN) are left out, as intake reads only the header's text and numbers.
    parentPort.postMessage({ id: msg.id, json: JSON.stringify(dataset, (_key, v) => (v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? undefined : v)) });
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: err instanceof Error ? err.message : String(err) });
  }
});
