import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { deriveUid } from "../../src/dicom/uid.ts";
import { toPart10Buffer } from "../../src/dicom/write.ts";
import { loadPresentationImage } from "../../src/image/presentation.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { applyAugmentation, DEFAULT_AUGMENTATION } from "../../src/training/augment.ts";
import { DatasetError, parseCsv, readLabelTable, resolveImages, toCsv } from "../../src/training/dataset.ts";
import { findSplitLeakage } from "../../src/training/leakage.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const has = requireSharedData();

describe("labels CSV", () => {
  const tmp = tempDir("cxr-dataset-");
  afterAll(() => tmp.cleanup());

  it("parses quoted fields and names file:line for bad label values", () => {
    expect(parseCsv('a,"b,c","d ""e"""\r\n1,2,3\n')).toEqual([
      ["a", "b,c", 'd "e"'],
      ["1", "2", "3"],
    ]);
    const p = join(tmp.dir, "bad.csv");
    writeFileSync(p, toCsv(["Image", "PatientId", ...NIH_LABELS], [["a.png", "1", ...NIH_LABELS.map((_, j) => (j === 2 ? "yes" : "0"))]]));
    expect(() => readLabelTable(p)).toThrow(new DatasetError(`${p}:2: Effusion is "yes", expected 0 or 1`));
    writeFileSync(p, "Image,PatientId,Cardiomegaly\na.png,1,0\n");
    expect(() => readLabelTable(p)).toThrow(/label columns missing: Emphysema, Effusion/);
  });

  it("reads a CSV saved with a UTF-8 byte order mark (as spreadsheet programs write it)", () => {
    const p = join(tmp.dir, "bom.csv");
    writeFileSync(p, "\uFEFF" + toCsv(["Image", "PatientId", ...NIH_LABELS], [["a.png", "1", ...NIH_LABELS.map(() => "0")]]));
    const table = readLabelTable(p);
    expect(table.keyColumn).toBe("Image");
    expect(table.header[0]).toBe("Image");
    expect(table.rows.map((r) => r.key)).toEqual(["a.png"]);
  });
});

describe.runIf(has)("datasets over the real NIH files", () => {
  const tmp = tempDir("cxr-dataset-real-");
  const dicomDir = join(tmp.dir, "dicom");
  const header = parseCsv(readFileSync(join(SHARED_NIH, "labels.csv"), "utf8"))[0]!;
  const rows = parseCsv(readFileSync(join(SHARED_NIH, "labels.csv"), "utf8")).slice(1, 4);
  const col = (n: string) => header.indexOf(n);
  beforeAll(async () => {
    mkdirSync(join(dicomDir, "nested"), { recursive: true });
    for (const [i, r] of rows.entries()) {
      const { data, info } = await sharp(join(SHARED_NIH, "images", r[col("Image")]!)).greyscale().raw().toBuffer({ resolveWithObject: true });
      const ds = {
        SOPClassUID: "1.2.840.10008.5.1.4.1.1.1.1",
        SOPInstanceUID: deriveUid("dataset-test", String(i)),
        StudyInstanceUID: deriveUid("dataset-test", String(i), "study"),
        SeriesInstanceUID: deriveUid("dataset-test", String(i), "series"),
        Modality: "DX",
        PatientID: r[col("PatientId")],
        AccessionNumber: `ACC${i}`,
        SamplesPerPixel: 1,
        PhotometricInterpretation: "MONOCHROME2",
        Rows: info.height,
        Columns: info.width,
        BitsAllocated: 8,
        BitsStored: 8,
        HighBit: 7,
        PixelRepresentation: 0,
        PixelData: new Uint8Array(data).buffer,
        _vrMap: { PixelData: "OB" },
      };
      writeFileSync(join(dicomDir, i === 2 ? "nested" : "", `img${i}.dcm`), toPart10Buffer(ds));
    }
    writeFileSync(join(dicomDir, "README.txt"), "not DICOM: ignored when indexing, never matched");
  });
  afterAll(() => tmp.cleanup());

  it("a DICOM folder with labels keyed by SOP Instance UID or accession: every row finds its file; unknown keys are reported", async () => {
    for (const key of ["SOPInstanceUID", "AccessionNumber"] as const) {
      const csv = join(tmp.dir, `${key}.csv`);
      const keys = rows.map((_, i) => (key === "SOPInstanceUID" ? deriveUid("dataset-test", String(i)) : `ACC${i}`));
      writeFileSync(csv, toCsv([key, "PatientId", ...NIH_LABELS], [...rows.map((r, i) => [keys[i]!, r[col("PatientId")]!, ...NIH_LABELS.map((l) => r[col(l)]!)]), ["UNKNOWN", "5", ...NIH_LABELS.map(() => "0")]]));
      const table = readLabelTable(csv);
      expect(table.keyColumn).toBe(key);
      const { resolved, unresolved } = resolveImages(table, table.rows, dicomDir);
      expect(resolved.map((r) => r.path.replace(dicomDir, ""))).toEqual(["/img0.dcm", "/img1.dcm", "/nested/img2.dcm"]);
      expect(unresolved.map((u) => u.reason)).toEqual([`no DICOM file under ${dicomDir} with ${key} UNKNOWN`]);
      // the labels travel with the file, and the DICOM pixels are the PNG's
      expect(resolved[0]!.labels).toEqual(NIH_LABELS.map((l) => Number(rows[0]![col(l)])));
    }
    const fromDicom = await loadPresentationImage(join(dicomDir, "img0.dcm"));
    const fromPng = await loadPresentationImage(join(SHARED_NIH, "images", rows[0]![col("Image")]!));
    let maxDiff = 0;
    fromDicom.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - fromPng.data[i]!))));
    expect(maxDiff).toBeLessThan(1e-6);
  });

  it("cxr split writes a patient-level Split column", async () => {
    const noSplit = join(tmp.dir, "nosplit.csv");
    const [h, ...all] = parseCsv(readFileSync(join(SHARED_NIH, "labels.csv"), "utf8"));
    const s = h!.indexOf("Split");
    writeFileSync(noSplit, toCsv(h!.filter((_, i) => i !== s), all.map((r) => r.filter((_, i) => i !== s))));
    const out = join(tmp.dir, "split.csv");
    expect(await main(["node", "cxr", "split", "--labels", noSplit, "--out", out, "--seed", "2"])).toBe(0);
    const table = readLabelTable(out);
    expect(table.hasSplit).toBe(true);
    expect(table.rows).toHaveLength(520);
    expect(findSplitLeakage(table.rows)).toEqual([]);
    expect(new Set(table.rows.map((r) => r.split))).toEqual(new Set(["train", "valid", "test"]));
  });

  it("augmentation: seeded, no horizontal flip by default", async () => {
    const img = await loadPresentationImage(join(SHARED_NIH, "images", rows[0]![col("Image")]!));
    const a = applyAugmentation(img, { ...DEFAULT_AUGMENTATION, copies: 1 }, 1, "sha", 1);
    const b = applyAugmentation(img, { ...DEFAULT_AUGMENTATION, copies: 1 }, 1, "sha", 1);
    const c = applyAugmentation(img, { ...DEFAULT_AUGMENTATION, copies: 1 }, 1, "sha", 2);
    expect(DEFAULT_AUGMENTATION.horizontalFlip).toBe(false);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data)).not.toEqual(Array.from(c.data));
    // A flip-only transform mirrors the image exactly.
    const flipOnly = { copies: 1, shift: 0, zoom: 0, rotate: 0, contrast: 0, brightness: 0, horizontalFlip: true };
    let flipped: ReturnType<typeof applyAugmentation> | undefined;
    for (let k = 1; k < 20 && !flipped; k++) {
      const t = applyAugmentation(img, flipOnly, 1, "sha", k);
      if (t.data[0] !== img.data[0] || t.data[1] !== img.data[1]) flipped = t;
    }
    expect(flipped).toBeDefined();
    expect(flipped!.data[5 * img.width + 7]).toBeCloseTo(img.data[5 * img.width + (img.width - 1 - 7)]!, 6);
  });
});
