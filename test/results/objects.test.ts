import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { readDicom } from "../../src/dicom/read.ts";
import { resizeGray } from "../../src/image/resize.ts";
import { captureSize } from "../../src/results/sc/render.ts";
import { CODES } from "../../src/results/sr/codes.ts";
import { readAiResultsSr } from "../../src/results/sr/read.ts";
import { deriveResultUids } from "../../src/results/input.ts";
import { writeResultObjects, type WrittenResultObjects } from "../../src/results/write.ts";
import { tempDir } from "../helpers/tmp.ts";
import { dciodvfy, dsrdump, unexplainedWarnings } from "./dicom3tools.ts";
import { gradientImage, syntheticCard, syntheticResult, syntheticSource } from "./synthetic.ts";

type Item = Record<string, unknown>;
const tmp = tempDir("cxr-results-");
afterAll(() => tmp.cleanup());

const card = syntheticCard();
const image = gradientImage(1200, 900);
const source = syntheticSource();
const now = new Date("2026-03-04T05:06:07.089Z");
// Effusion comes before Pneumothorax in the card, so sc-1 is Effusion and sc-2 Pneumothorax.
const result = syntheticResult(card, { Pneumothorax: 0.9, Effusion: 0.7, Mass: 0.45 }, { Pneumothorax: [0.75, 0.75], Effusion: [0.25, 0.8] });
let written: WrittenResultObjects;

beforeAll(() => {
  written = writeResultObjects({ dataset: source, image, result, outDir: tmp.dir, basename: "case", now });
});

function rgbAt(ds: Item, x: number, y: number): [number, number, number] {
  const cols = ds.Columns as number;
  const px = new Uint8Array((ds.PixelData as ArrayBuffer[])[0]!);
  const i = 3 * (Math.round(y) * cols + Math.round(x));
  return [px[i]!, px[i + 1]!, px[i + 2]!];
}

describe("TID 1500 SR from a synthetic result", () => {
  it("passes dciodvfy without errors and with only the documented warnings, and dsrdump parses it strictly", () => {
    const v = dciodvfy(written.sr.path);
    expect(v.errors, v.output).toEqual([]);
    expect(unexplainedWarnings(v.warnings), v.output).toEqual([]);
    const d = dsrdump(written.sr.path);
    expect(d.status, d.stderr).toBe(0);
    expect(d.problems).toEqual([]);
    expect(d.stdout).toContain('<CONTAINER:(,,"Imaging Measurement Report")=SEPARATE>');
    expect(d.stdout).toContain('<contains SCOORD:(,,"Image Region")=(POLYLINE');
  });

  it("reads back the same findings, probabilities, positives and regions", () => {
    const sr = readAiResultsSr(written.sr.path);
    expect(sr.findings.map((f) => f.label)).toEqual(card.labels.map((l) => l.name));
    expect(sr.findings.map((f) => f.probability)).toEqual(result.findings.map((f) => f.probability));
    expect(sr.findings.map((f) => f.code)).toEqual(result.findings.map((f) => f.code));
    expect(sr.positives).toEqual(["Effusion", "Pneumothorax"]);
    expect(sr.device).toEqual({ uid: card.deviceUid, name: "synthetic-test-model 1.2.3", manufacturer: "cxr-triage tests", modelName: "synthetic-test-model" });
    expect(sr.sourceImages).toEqual([{ sopClassUid: source.SOPClassUID, sopInstanceUid: source.SOPInstanceUID }]);
    expect(sr.findings.filter((f) => f.region).map((f) => f.label)).toEqual(["Effusion", "Pneumothorax"]);
    const region = sr.findings.find((f) => f.label === "Pneumothorax")!.region!;
    expect(region.graphicType).toBe("POLYLINE");
    expect(region.sopInstanceUid).toBe(source.SOPInstanceUID);
    const [x0, y0, x1, , , y1] = [region.points[0]!, region.points[1]!, region.points[2]!, region.points[3]!, region.points[4]!, region.points[5]!];
    expect(region.points.slice(8)).toEqual(region.points.slice(0, 2)); // closed
    // the box lies around the blob at (0.75, 0.75) of the image, well inside it and far smaller than it
    expect(x0).toBeLessThan(0.75 * 1200); expect(x1).toBeGreaterThan(0.75 * 1200);
    expect(y0).toBeLessThan(0.75 * 900); expect(y1).toBeGreaterThan(0.75 * 900);
    expect(x0).toBeGreaterThan(0.5 * 1200); expect(y0).toBeGreaterThan(0.5 * 900);
    expect(x1).toBeLessThanOrEqual(1200); expect(y1).toBeLessThanOrEqual(900);
  });

  it("has the shape OHIF's SR extension reads: named items, one Tracking UID first among UIDREFs, SCOORD with one SELECTED FROM image", () => {
    const ds = readDicom(written.sr.path).dataset;
    expect((ds.ConceptNameCodeSequence as Item[])[0]!.CodeValue).toBe("126000");
    expect((ds.ContentTemplateSequence as Item[])[0]).toMatchObject({ MappingResource: "DCMR", TemplateIdentifier: "1500" });
    const root = ds.ContentSequence as Item[];
    for (const item of root) expect(item.ConceptNameCodeSequence).toBeDefined();
    const measurements = root.find((i) => (i.ConceptNameCodeSequence as Item[])[0]!.CodeValue === "126010")!;
    const groups = measurements.ContentSequence as Item[];
    expect(groups).toHaveLength(14);
    for (const g of groups) {
      expect((g.ConceptNameCodeSequence as Item[])[0]!.CodeValue).toBe("125007");
      const children = g.ContentSequence as Item[];
      for (const c of children) expect(c.ConceptNameCodeSequence).toBeDefined();
      expect((children.find((c) => c.ValueType === "UIDREF")!.ConceptNameCodeSequence as Item[])[0]!.CodeValue).toBe("112040");
      expect(children.find((c) => c.ValueType === "TEXT" && (c.ConceptNameCodeSequence as Item[])[0]!.CodeValue === "112039")).toBeDefined();
      expect(children.find((c) => (c.ConceptNameCodeSequence as Item[])[0]!.CodeValue === "121071")).toBeDefined();
      const scoords = children.filter((c) => c.ValueType === "SCOORD");
      // OHIF reads a NUM's ContentSequence as a graphic reference in groups without SCOORD: keep NUMs childless
      for (const num of children.filter((c) => c.ValueType === "NUM")) expect(num.ContentSequence).toBeUndefined();
      for (const s of scoords) {
        const sel = s.ContentSequence as Item[];
        expect(sel).toHaveLength(1);
        expect(sel[0]).toMatchObject({ RelationshipType: "SELECTED FROM", ValueType: "IMAGE" });
      }
      expect(scoords.length).toBeLessThanOrEqual(1);
    }
  });

  it("belongs to the source's study in a new SR series, references its evidence, and is marked unverified and complete", () => {
    const ds = readDicom(written.sr.path).dataset;
    expect(ds).toMatchObject({
      SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.34", Modality: "SR", StudyInstanceUID: source.StudyInstanceUID,
      VerificationFlag: "UNVERIFIED", CompletionFlag: "COMPLETE", ContentDate: expect.stringMatching(/^\d{8}$/),
    });
    expect(ds.SeriesInstanceUID).not.toBe(source.SeriesInstanceUID);
    const evidence = (ds.CurrentRequestedProcedureEvidenceSequence as Item[])[0]!;
    expect(evidence.StudyInstanceUID).toBe(source.StudyInstanceUID);
    const sop = ((evidence.ReferencedSeriesSequence as Item[])[0]!.ReferencedSOPSequence as Item[])[0]!;
    expect(sop.ReferencedSOPInstanceUID).toBe(source.SOPInstanceUID);
    const equipment = (ds.ContributingEquipmentSequence as Item[])[0]!;
    expect((equipment.PurposeOfReferenceCodeSequence as Item[])[0]).toMatchObject({ CodeValue: CODES.processingEquipment.value, CodingSchemeDesignator: "DCM" });
    expect(equipment.DeviceUID).toBe(card.deviceUid);
    // the source's "81" cannot be confirmed as years (no birth date): left out, not copied
    expect(ds.PatientAge).toBeUndefined();
    expect(written.notes.join("\n")).toMatch(/Patient's Age "81" left out/);
    expect(readDicom(written.sr.path).dict["00080005"]?.Value).toEqual(["ISO_IR 192"]); // Müller
  });

  it("is idempotent: the same input gives the same UIDs and the same bytes", () => {
    const again = writeResultObjects({ dataset: source, image, result, outDir: join(tmp.dir, "again"), basename: "case", now });
    expect(again.sr.sopInstanceUid).toBe(written.sr.sopInstanceUid);
    expect(again.sc.map((s) => s.sopInstanceUid)).toEqual(written.sc.map((s) => s.sopInstanceUid));
    expect(readFileSync(again.sr.path).equals(readFileSync(written.sr.path))).toBe(true);
    expect(readFileSync(again.sc[1]!.path).equals(readFileSync(written.sc[1]!.path))).toBe(true);
  });
});

describe("an SR that replaces an earlier one (the same image re-sent with new pixels)", () => {
  it("names the SR it replaces in its Predecessor Documents Sequence, and still passes dciodvfy and dsrdump", () => {
    const first = readDicom(written.sr.path).dataset;
    const predecessor = { studyInstanceUid: String(first.StudyInstanceUID), seriesInstanceUid: String(first.SeriesInstanceUID), sopClassUid: String(first.SOPClassUID), sopInstanceUid: written.sr.sopInstanceUid };
    const uids = deriveResultUids([source.SOPInstanceUID as string, "sha256:new-pixels"], card.deviceUid);
    const second = writeResultObjects({ dataset: source, image, result, outDir: join(tmp.dir, "second"), basename: "case", uids, now, predecessor });
    expect(second.sr.sopInstanceUid).not.toBe(written.sr.sopInstanceUid);

    const v = dciodvfy(second.sr.path);
    expect(v.errors, v.output).toEqual([]);
    expect(unexplainedWarnings(v.warnings), v.output).toEqual([]);
    const d = dsrdump(second.sr.path);
    expect(d.status, d.stderr).toBe(0);
    expect(d.problems).toEqual([]);

    const ds = readDicom(second.sr.path).dataset;
    expect(ds.PredecessorDocumentsSequence).toMatchObject([
      {
        StudyInstanceUID: source.StudyInstanceUID,
        ReferencedSeriesSequence: [
          { SeriesInstanceUID: first.SeriesInstanceUID, ReferencedSOPSequence: [{ ReferencedSOPClassUID: "1.2.840.10008.5.1.4.1.1.88.34", ReferencedSOPInstanceUID: written.sr.sopInstanceUid }] },
        ],
      },
    ]);
    expect(readAiResultsSr(second.sr.path).predecessors).toEqual([written.sr.sopInstanceUid]);
    // A first result replaces nothing.
    expect(first.PredecessorDocumentsSequence).toBeUndefined();
    expect(readAiResultsSr(written.sr.path).predecessors).toEqual([]);
  });
});

describe("heatmap Secondary Captures from a synthetic result", () => {
  it("writes one capture per positive finding that passes dciodvfy", () => {
    expect(written.sc.map((s) => s.path.split("/").pop())).toEqual(["case.sc-1.dcm", "case.sc-2.dcm"]);
    for (const sc of written.sc) {
      const v = dciodvfy(sc.path);
      expect(v.errors, v.output).toEqual([]);
      expect(unexplainedWarnings(v.warnings), v.output).toEqual([]);
    }
  });

  it("is an 8-bit RGB SC in the source's study, downscaled to 1024, with the SC equipment and derivation filled", () => {
    const ds = readDicom(written.sc[1]!.path).dataset;
    expect(ds).toMatchObject({
      SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", Modality: "OT", StudyInstanceUID: source.StudyInstanceUID,
      SamplesPerPixel: 3, PhotometricInterpretation: "RGB", PlanarConfiguration: 0, BitsAllocated: 8, BitsStored: 8,
      Columns: 1024, Rows: 768, BurnedInAnnotation: "YES", ConversionType: "WSD", ImageType: ["DERIVED", "SECONDARY"],
      SecondaryCaptureDeviceManufacturer: "cxr-triage tests", SecondaryCaptureDeviceManufacturerModelName: "synthetic-test-model",
      BodyPartExamined: "CHEST", InstanceNumber: 2,
    });
    expect(ds.SeriesInstanceUID).not.toBe(source.SeriesInstanceUID);
    expect(String(ds.DerivationDescription)).toMatch(/Pneumothorax/);
    const src = (ds.SourceImageSequence as Item[])[0]!;
    expect(src.ReferencedSOPInstanceUID).toBe(source.SOPInstanceUID);
    expect((src.PurposeOfReferenceCodeSequence as Item[])[0]!.CodeValue).toBe("121322");
  });

  it("really contains the heatmap: hot pixels are coloured, cold pixels are exactly the plain image", () => {
    const ds = readDicom(written.sc[1]!.path).dataset; // Pneumothorax, blob at (0.75, 0.75)
    const { width, height } = captureSize(image.width, image.height);
    const plain = resizeGray(image.data, image.width, image.height, width, height);
    const plainAt = (x: number, y: number) => Math.round(Math.min(1, Math.max(0, plain[y * width + x]!)) * 255);
    const [hx, hy] = [Math.round(0.75 * width), Math.round(0.75 * height)];
    const hot = rgbAt(ds, hx, hy);
    // jet at full heat is dark red (0.5, 0, 0), blended 60% over the gray
    expect(Math.max(...hot) - Math.min(...hot)).toBeGreaterThan(60);
    expect(hot[2]).toBeLessThan(plainAt(hx, hy) - 40);
    const [cx, cy] = [Math.round(0.1 * width), Math.round(0.5 * height)];
    const cold = rgbAt(ds, cx, cy);
    for (const c of cold) expect(Math.abs(c - plainAt(cx, cy))).toBeLessThanOrEqual(1);
    // the Effusion capture is hot elsewhere: at the Pneumothorax blob it is plain
    const effusion = readDicom(written.sc[0]!.path).dataset;
    const there = rgbAt(effusion, hx, hy);
    for (const c of there) expect(Math.abs(c - plainAt(hx, hy))).toBeLessThanOrEqual(1);
    const effusionHot = rgbAt(effusion, Math.round(0.25 * width), Math.round(0.8 * height));
    expect(Math.max(...effusionHot) - Math.min(...effusionHot)).toBeGreaterThan(60);
  });

  it("has the disclaimer banner burned in: a dark band with bright (yellow) text pixels at the top", () => {
    const ds = readDicom(written.sc[0]!.path).dataset;
    let yellow = 0, darker = 0;
    for (let y = 2; y < 20; y++) {
      for (let x = 0; x < 1024; x += 2) {
        const [r, g, b] = rgbAt(ds, x, y);
        if (r > 200 && g > 160 && b < 90) yellow++;
        if (r < 60 && g < 60 && b < 60) darker++;
      }
    }
    expect(yellow).toBeGreaterThan(50);
    expect(darker).toBeGreaterThan(1000); // the gradient itself is never below 0.2 (51)
  });

  it("makes one summary capture without overlay when no finding is positive", () => {
    const negative = syntheticResult(card, { Mass: 0.3 });
    const out = writeResultObjects({ dataset: syntheticSource({ BodyPartExamined: undefined }), image, result: negative, outDir: join(tmp.dir, "neg"), basename: "neg", now });
    expect(out.sc).toHaveLength(1);
    const v = dciodvfy(out.sc[0]!.path);
    expect(v.errors, v.output).toEqual([]);
    const ds = readDicom(out.sc[0]!.path).dataset;
    expect(String(ds.DerivationDescription)).toMatch(/summary/);
    expect(ds.Laterality).toBe("");
    for (let y = 300; y < 768; y += 37) for (let x = 0; x < 1024; x += 41) {
      const [r, g, b] = rgbAt(ds, x, y);
      expect(r === g && g === b).toBe(true);
    }
    expect(readAiResultsSr(out.sr.path).positives).toEqual([]);
  });

  it("fails clearly when the font is missing", async () => {
    const before = process.env.CXR_FONT;
    process.env.CXR_FONT = "/nonexistent/font.ttf";
    vi.resetModules();
    try {
      const render = await import("../../src/results/sc/render.ts");
      expect(() => render.renderCapture(image, undefined, [{ text: "x", color: "#fff" }])).toThrow(/font \/nonexistent\/font\.ttf not found.*fonts-dejavu-core/);
    } finally {
      if (before === undefined) delete process.env.CXR_FONT; else process.env.CXR_FONT = before;
      vi.resetModules();
    }
  });
});
