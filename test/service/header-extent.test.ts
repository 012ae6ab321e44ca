import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseBudgetSchema, SOP_CLASS } from "../../src/config/service.ts";
import { datasetEncoding, measureHeader } from "../../src/dicom-listener/header-extent.ts";
import { parseDicom, readDicom } from "../../src/dicom/read.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { dataElement, dataset, manyElements, nestedSequences, nestedSequencesDefined } from "./datasets.ts";

const FILES = ["test1.dcm", "rsna_cr_jpeg_baseline.dcm", "RG2_J2KR.dcm", "RG2_JLSL.dcm", "RG2_RLE.dcm", "RG2_JPLY.dcm", "CT_small.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "JPEG-lossy.dcm", "SC_rgb_jpeg_dcmtk.dcm"];
const budget = parseBudgetSchema.parse({});
const id = { sopClassUid: SOP_CLASS.CR, sopInstanceUid: "1.2.3.1", studyInstanceUid: "1.2.3.2", seriesInstanceUid: "1.2.3.3" };
const EXPLICIT = { explicitVr: true, littleEndian: true };
const IMPLICIT = { explicitVr: false, littleEndian: true };

describe("header extent and parse budget of received datasets", () => {
  it("finds the top-level Pixel Data in the first bytes, and the header parsed from them equals the file's", () => {
    if (!requireSharedData()) return;
    for (const f of FILES) {
      const path = join(SHARED_DICOM, f);
      const bytes = readFileSync(path);
      const start = 132 + 12 + bytes.readUInt32LE(140);
      const file = readDicom(path, { withPixelData: false });
      const ds = bytes.subarray(start);
      const extent = measureHeader(ds.subarray(0, Math.min(ds.length, 256 * 1024)), datasetEncoding(file.transferSyntaxUid)!, budget, false);
      expect(extent.kind, f).toBe("header");
      const at = extent.kind === "header" ? extent.end : -1;
      expect([...ds.subarray(at, at + 4)], f).toEqual([0xe0, 0x7f, 0x10, 0x00]);
      const partial = Buffer.concat([bytes.subarray(0, start), ds.subarray(0, at)]);
      const parsed = parseDicom(new Uint8Array(partial.buffer, partial.byteOffset, partial.byteLength), path, { withPixelData: false });
      expect(parsed.dataset, f).toEqual(file.dataset);
    }
  });

  it("asks for more bytes while the header is not complete in them", () => {
    if (!requireSharedData()) return;
    const bytes = readFileSync(join(SHARED_DICOM, "test1.dcm"));
    const start = 132 + 12 + bytes.readUInt32LE(140);
    expect(measureHeader(bytes.subarray(start, start + 300), IMPLICIT, budget, false)).toEqual({ kind: "incomplete" });
    expect(measureHeader(Buffer.from("not a dataset at all, not at all"), EXPLICIT, budget, false).kind).toBe("malformed");
  });

  it("finds Pixel Data beyond 256 KB (a large private element before it) instead of reading the whole file", () => {
    const enc = { explicit: true };
    const ds = dataset(enc, id, [dataElement(enc, 0x0041, 0x1010, "OB", Buffer.alloc(600 * 1024))]);
    const extent = measureHeader(ds, EXPLICIT, budget, false);
    expect(extent).toMatchObject({ kind: "header", end: ds.length - 12 - 16 });
  });

  it("a whole data set without Pixel Data is its own header; a header over maxHeaderBytes is over budget", () => {
    const enc = { explicit: true };
    const ds = dataset(enc, id).subarray(0, -(12 + 16));
    expect(measureHeader(ds, EXPLICIT, budget, true)).toMatchObject({ kind: "header", end: ds.length });
    expect(measureHeader(ds, EXPLICIT, budget, false)).toEqual({ kind: "incomplete" });
    const big = dataset(enc, id, [dataElement(enc, 0x0041, 0x1010, "OB", Buffer.alloc(2048))]);
    expect(measureHeader(big, EXPLICIT, { ...budget, maxHeaderBytes: 1024 }, false)).toMatchObject({ kind: "overBudget", reason: expect.stringMatching(/maxHeaderBytes/) });
  });

  for (const [name, enc, encoding] of [["explicit", { explicit: true }, EXPLICIT], ["implicit", { explicit: false }, IMPLICIT]] as const) {
    it(`counts nesting and elements as it walks, ${name} VR, undefined and defined lengths, and stops at the first budget exceeded`, () => {
      const ok = dataset(enc, id, [nestedSequences(enc, 32)]);
      expect(measureHeader(ok, encoding, budget, false)).toMatchObject({ kind: "header", depth: 32 });
      expect(measureHeader(dataset(enc, id, [nestedSequencesDefined(enc, 32)]), encoding, budget, false)).toMatchObject({ kind: "header", depth: 32 });
      for (const deep of [nestedSequences(enc, 30_000), nestedSequencesDefined(enc, 33)]) {
        const started = performance.now();
        expect(measureHeader(dataset(enc, id, [deep]), encoding, budget, false)).toMatchObject({ kind: "overBudget", reason: expect.stringMatching(/maxNestingDepth/) });
        expect(performance.now() - started).toBeLessThan(50);
      }
      expect(measureHeader(dataset(enc, id, [manyElements(enc, 60_000)]), encoding, budget, false)).toMatchObject({ kind: "overBudget", reason: expect.stringMatching(/maxElements/) });
      expect(measureHeader(dataset(enc, id, [manyElements(enc, 40_000)]), encoding, budget, false).kind).toBe("header");
    });
  }
});
