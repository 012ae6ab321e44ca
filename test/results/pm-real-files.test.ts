import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readDicom } from "../../src/dicom/read.ts";
import { upsampleHeatmap } from "../../src/inference/classifier.ts";
import { MAP_LEVELS, mapSize, PARAMETRIC_MAP_STORAGE } from "../../src/results/pm/map.ts";
import { readParametricMap } from "../../src/results/pm/read.ts";
import { mappedFindings } from "../../src/results/pm/selection.ts";
import { readAiResultsSr } from "../../src/results/sr/read.ts";
import { CHEST_DICOM_FILES, RG2_FILES, requireSharedData } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { realCases, type RealCase } from "./real-cases.ts";
import { dciodvfy, unexplainedWarnings } from "./dicom3tools.ts";

type Item = Record<string, unknown>;
const hasData = requireSharedData();
// The chest files and the NEMA CR in every transfer syntax the pipeline decodes.
const FILES = [...CHEST_DICOM_FILES, ...RG2_FILES];
const tmp = tempDir("cxr-pm-real-");

/** "all" on two files, so that every finding's map is checked somewhere; the default elsewhere. */
const mapsOfAll = (file: string) => file === "test1.dcm" || file === "RG2_JPLL.dcm";
let cases: RealCase[] = [];

describe.runIf(hasData)("Parametric Maps from a real DenseNet121-14 on the shared chest files and every RG2 transfer syntax", () => {
  beforeAll(async () => {
    cases = await realCases(FILES, tmp.dir, (file) => (mapsOfAll(file) ? "all" : undefined));
  }, 300_000);
  afterAll(() => tmp.cleanup());

  it("writes one map per selected finding: every finding with \"all\", else the positives or the top finding", () => {
    for (const c of cases) {
      const all = mapsOfAll(c.file);
      const expected = mappedFindings(c.result, all ? "all" : "positive").map((f) => f.label);
      expect(c.written.pm.map((m) => m.label), c.file).toEqual(expected);
      expect(c.written.pm.length, c.file).toBe(all ? 14 : Math.max(1, c.result.findings.filter((f) => f.positive).length));
    }
  });

  it("every Parametric Map passes dciodvfy with zero errors and only the documented warnings", () => {
    let files = 0;
    const warnings = new Map<string, number>();
    for (const c of cases) {
      for (const m of c.written.pm) {
        const v = dciodvfy(m.path);
        files++;
        expect(v.output, m.path).toMatch(/^ParametricMap$/m);
        expect(v.errors, `${m.path}\n${v.output}`).toEqual([]);
        expect(unexplainedWarnings(v.warnings), `${m.path}\n${v.output}`).toEqual([]);
        for (const w of v.warnings) warnings.set(w, (warnings.get(w) ?? 0) + 1);
      }
    }
    expect(files).toBe(cases.reduce((n, c) => n + c.written.pm.length, 0));
    console.log(`dciodvfy on ${files} Parametric Maps — warnings:\n${[...warnings].map(([w, n]) => `${String(n).padStart(4)}  ${w}`).join("\n")}`);
  });

  it("reads back to the heatmap the plugin computed, within the quantization step, at the map's matrix", () => {
    for (const c of cases) {
      let varied = 0;
      for (const m of c.written.pm) {
        const map = readParametricMap(m.path);
        const { columns, rows } = mapSize(c.image.width, c.image.height);
        expect([map.columns, map.rows], c.file).toEqual([columns, rows]);
        expect(map.label).toBe(m.label);
        expect(map.code).toEqual(c.result.findings.find((f) => f.label === m.label)!.code);
        expect(map.unit).toEqual({ value: "1", scheme: "UCUM", meaning: "no units" });
        const heat = upsampleHeatmap(c.result.heatmaps.find((h) => h.label === m.label)!, columns, rows);
        let worst = 0;
        for (let i = 0; i < heat.length; i++) worst = Math.max(worst, Math.abs(map.values[i]! - Math.min(1, Math.max(0, heat[i]!))));
        expect(worst, `${c.file} ${m.label}`).toBeLessThanOrEqual(0.5 / (MAP_LEVELS - 1) + 1e-6);
        const range = map.values.reduce((r, v) => [Math.min(r[0]!, v), Math.max(r[1]!, v)], [Infinity, -Infinity]);
        if (range[1]! - range[0]! > 0.2) varied++;
      }
      // real maps, not only flat ones (GradCAM of some findings can be all zero after its ReLU)
      expect(varied, c.file).toBeGreaterThan(0);
    }
  });

  it("registers on the source: Derivation Image and Common Instance Reference name it, spacing is scaled to the map's matrix", () => {
    for (const c of cases) {
      const source = readDicom(c.path, { withPixelData: false }).dataset;
      const ds = readDicom(c.written.pm[0]!.path, { withPixelData: false }).dataset;
      expect(ds.SOPClassUID).toBe(PARAMETRIC_MAP_STORAGE);
      expect(ds.StudyInstanceUID).toBe(source.StudyInstanceUID);
      const shared = (ds.SharedFunctionalGroupsSequence as Item[])[0]!;
      const derivation = (shared.DerivationImageSequence as Item[])[0]!;
      expect(((derivation.SourceImageSequence as Item[])[0]!).ReferencedSOPInstanceUID).toBe(source.SOPInstanceUID);
      const series = (ds.ReferencedSeriesSequence as Item[])[0]!;
      expect(series.SeriesInstanceUID).toBe(source.SeriesInstanceUID);
      expect(((series.ReferencedInstanceSequence as Item[])[0]!).ReferencedSOPInstanceUID).toBe(source.SOPInstanceUID);
      const spacing = (((shared.PixelMeasuresSequence as Item[])[0]!).PixelSpacing as unknown[]).map(Number);
      const sourceSpacing = source.PixelSpacing ? (source.PixelSpacing as unknown[]).map(Number) : [1, 1];
      // the map spans the same extent as the source: rows x row spacing is the same length
      expect(Number(ds.Rows) * spacing[0]!, c.file).toBeCloseTo(Number(source.Rows) * sourceSpacing[0]!, 3);
      expect(Number(ds.Columns) * spacing[1]!, c.file).toBeCloseTo(Number(source.Columns) * sourceSpacing[1]!, 3);
      // no source here has a Frame of Reference: the map gets its own, the same on every run
      expect(source.FrameOfReferenceUID).toBeUndefined();
      expect(ds.FrameOfReferenceUID).toMatch(/^2\.25\.\d+$/);
    }
  });

  it("carries the disclaimer and the model's Contributing Equipment, as the SR does", () => {
    for (const c of cases) {
      const ds = readDicom(c.written.pm[0]!.path, { withPixelData: false }).dataset;
      const sr = readDicom(c.written.sr.path, { withPixelData: false }).dataset;
      expect(ds.ContentDescription).toBe("FOR PRIORITIZATION ONLY — NOT FOR DIAGNOSTIC USE");
      expect(ds.ContributingEquipmentSequence).toEqual(sr.ContributingEquipmentSequence);
      expect(((ds.ContributingEquipmentSequence as Item[])[0]!).DeviceUID).toBe(c.result.card.deviceUid);
    }
  });

  it("the SR references each map from its finding's group and lists them as other evidence", () => {
    for (const c of cases) {
      const sr = readAiResultsSr(c.written.sr.path);
      const byLabel = new Map(c.written.pm.map((m) => [m.label, m.sopInstanceUid]));
      for (const f of sr.findings) expect(f.parametricMap, `${c.file} ${f.label}`).toBe(byLabel.get(f.label));
      const ds = readDicom(c.written.sr.path, { withPixelData: false }).dataset;
      const listed = ((ds.PertinentOtherEvidenceSequence as Item[])[0]!.ReferencedSeriesSequence as Item[])
        .flatMap((s) => (s.ReferencedSOPSequence as Item[]).map((r) => r.ReferencedSOPInstanceUID));
      expect(listed.sort()).toEqual([...byLabel.values()].sort());
      const v = dciodvfy(c.written.sr.path);
      expect(v.errors, v.output).toEqual([]);
    }
  });
});
