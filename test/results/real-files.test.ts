import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readDicom } from "../../src/dicom/read.ts";
import { resizeGray } from "../../src/image/resize.ts";
import { upsampleHeatmap } from "../../src/inference/classifier.ts";
import { captureSize, HEAT_OPACITY, jet } from "../../src/results/sc/render.ts";
import { readAiResultsSr } from "../../src/results/sr/read.ts";
import { writeResultObjects } from "../../src/results/write.ts";
import { CHEST_DICOM_FILES, requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { realCases, type RealCase } from "./real-cases.ts";
import { dciodvfy, dsrdump, unexplainedWarnings } from "./dicom3tools.ts";

type Item = Record<string, unknown>;
const hasData = requireSharedData();
// The valid chest studies plus test4..6 (test1's pixels under wrong headers): results must be clean for any input.
const FILES = [...CHEST_DICOM_FILES, "test4.dcm", "test5.dcm", "test6.dcm"];
const tmp = tempDir("cxr-results-real-");

let cases: RealCase[] = [];

describe.runIf(hasData)("SR and SC from a real DenseNet121-14 on every chest DICOM file of ../shared/data/dicom", () => {
  beforeAll(async () => {
    cases = await realCases(FILES, tmp.dir);
  });
  afterAll(() => tmp.cleanup());

  it("the sources themselves are not conformant (dciodvfy reports errors on test1..3)", () => {
    for (const file of ["test1.dcm", "test2.dcm", "test3.dcm"]) {
      const v = dciodvfy(join(SHARED_DICOM, file));
      expect(v.errors.join("\n"), file).toMatch(/Patient's Age .* Length invalid for this VR/);
      expect(v.errors.join("\n"), file).toMatch(/Missing attribute Type 2 Required Element=<PatientName>/);
    }
  });

  it("every SR and SC written passes dciodvfy with zero errors and only the documented warnings", () => {
    const warnings = new Map<string, number>();
    let files = 0;
    for (const c of cases) {
      for (const path of [c.written.sr.path, ...c.written.sc.map((s) => s.path)]) {
        const v = dciodvfy(path);
        files++;
        expect(v.errors, `${path}\n${v.output}`).toEqual([]);
        expect(unexplainedWarnings(v.warnings), `${path}\n${v.output}`).toEqual([]);
        for (const w of v.warnings) warnings.set(w, (warnings.get(w) ?? 0) + 1);
      }
    }
    expect(files).toBeGreaterThanOrEqual(2 * FILES.length);
    console.log(`dciodvfy on ${files} result objects — warnings:\n${[...warnings].map(([w, n]) => `${String(n).padStart(4)}  ${w}`).join("\n")}`);
  });

  it("dsrdump parses every SR strictly, and the project's reader returns the same findings, probabilities and positives", () => {
    for (const c of cases) {
      const d = dsrdump(c.written.sr.path);
      expect(d.status, `${c.file}: ${d.stderr}`).toBe(0);
      expect(d.problems, c.file).toEqual([]);
      const sr = readAiResultsSr(c.written.sr.path);
      const source = readDicom(c.path, { withPixelData: false }).dataset;
      expect(sr.studyInstanceUid, c.file).toBe(source.StudyInstanceUID);
      expect(sr.findings.map((f) => [f.label, f.code.value, f.probability, f.positive]), c.file)
        .toEqual(c.result.findings.map((f) => [f.label, f.code.value, f.probability, f.positive]));
      expect(sr.positives).toEqual(c.result.findings.filter((f) => f.positive).map((f) => f.label));
      for (const f of sr.findings.filter((x) => x.positive)) {
        expect(f.region?.sopInstanceUid, `${c.file} ${f.label}`).toBe(source.SOPInstanceUID);
        const xs = f.region!.points.filter((_, i) => i % 2 === 0), ys = f.region!.points.filter((_, i) => i % 2 === 1);
        expect(Math.min(...xs)).toBeGreaterThanOrEqual(0); expect(Math.max(...xs)).toBeLessThanOrEqual(c.image.width);
        expect(Math.min(...ys)).toBeGreaterThanOrEqual(0); expect(Math.max(...ys)).toBeLessThanOrEqual(c.image.height);
      }
      expect(sr.device.uid).toBe(c.result.card.deviceUid);
    }
  });

  it("writes one SC per positive finding (or one summary), in the source's study", () => {
    for (const c of cases) {
      const positives = c.result.findings.filter((f) => f.positive).length;
      expect(c.written.sc.length, c.file).toBe(Math.max(1, positives));
      const source = readDicom(c.path, { withPixelData: false }).dataset;
      for (const sc of c.written.sc) {
        const ds = readDicom(sc.path, { withPixelData: false }).dataset;
        expect(ds.StudyInstanceUID).toBe(source.StudyInstanceUID);
        expect(((ds.SourceImageSequence as Item[])[0]!).ReferencedSOPInstanceUID).toBe(source.SOPInstanceUID);
      }
    }
  });

  it("SC pixels are the plain image blended with the real heatmap: exact where predicted, coloured where hot", () => {
    let checked = 0;
    for (const c of cases) {
      const finding = c.result.findings.find((f) => f.positive);
      if (!finding) continue;
      const ds = readDicom(c.written.sc[0]!.path).dataset;
      const { width, height } = captureSize(c.image.width, c.image.height);
      expect([ds.Columns, ds.Rows]).toEqual([width, height]);
      const px = new Uint8Array((ds.PixelData as ArrayBuffer[])[0]!);
      const plain = resizeGray(c.image.data, c.image.width, c.image.height, width, height);
      const heat = upsampleHeatmap(c.result.heatmaps.find((h) => h.label === finding.label)!, width, height);
      // below the text banner, the hottest and the coldest pixel
      let hot = -1, cold = -1;
      for (let i = Math.floor(0.2 * height) * width; i < heat.length; i++) {
        if (hot < 0 || heat[i]! > heat[hot]!) hot = i;
        if (cold < 0 || heat[i]! < heat[cold]!) cold = i;
      }
      const expected = (i: number) => {
        const g = Math.min(1, Math.max(0, plain[i]!)) * 255;
        const k = Math.round(Math.min(1, Math.max(0, heat[i]!)) * 255);
        const a = (HEAT_OPACITY * k) / 255;
        return jet(k / 255).map((cc) => Math.round((1 - a) * g + a * cc * 255));
      };
      for (const i of [hot, cold]) {
        const got = [px[3 * i]!, px[3 * i + 1]!, px[3 * i + 2]!];
        expected(i).forEach((e, ch) => expect(Math.abs(got[ch]! - e), `${c.file} pixel ${i} channel ${ch}`).toBeLessThanOrEqual(1));
      }
      const hotRgb = [px[3 * hot]!, px[3 * hot + 1]!, px[3 * hot + 2]!];
      const plainHot = Math.round(Math.min(1, Math.max(0, plain[hot]!)) * 255);
      expect(Math.max(...hotRgb.map((v) => Math.abs(v - plainHot))), `${c.file}: the hot spot is coloured`).toBeGreaterThan(30);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
  });

  it("re-processing gives the same UIDs (idempotent outputs)", () => {
    const c = cases[0]!;
    const again = writeResultObjects({ sourcePath: c.path, image: c.image, result: c.result, outDir: join(tmp.dir, "again"), basename: "again" });
    expect(again.sr.sopInstanceUid).toBe(c.written.sr.sopInstanceUid);
    expect(again.sc.map((s) => s.sopInstanceUid)).toEqual(c.written.sc.map((s) => s.sopInstanceUid));
  });
});
