import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initModelDir } from "../../src/model/model-dir.ts";
import { readAiResultsSr } from "../../src/results/sr/read.ts";
import { requireSharedData, SHARED_DICOM, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";
import { dciodvfy, unexplainedWarnings } from "./dicom3tools.ts";

const repo = join(import.meta.dirname, "../..");
const hasData = requireSharedData();
const tmp = tempDir("cxr-infer-dicom-");
const out = join(tmp.dir, "out");
let run: ReturnType<typeof spawnSync>;

describe.runIf(hasData)("cxr infer --dicom", () => {
  beforeAll(() => {
    const model = join(tmp.dir, "model");
    initModelDir({ inputSize: 96, seed: 9, out: model });
    run = spawnSync(process.execPath, [join(repo, "bin/cxr.js"), "infer", join(SHARED_DICOM, "rsna_cr_jpeg_baseline.dcm"), join(SHARED_NIH, "images/00000001_000.png"),
      "--model", model, "--out", out, "--dicom"], { cwd: repo, encoding: "utf8", timeout: 300_000 });
  });
  afterAll(() => tmp.cleanup());

  it("writes <name>.sr.dcm, <name>.sc-<n>.dcm and <name>.pm-<label>.dcm for the DICOM input only, all passing dciodvfy", () => {
    expect(run.status, String(run.stderr)).toBe(0);
    const files = readdirSync(out);
    expect(files).toContain("rsna_cr_jpeg_baseline.sr.dcm");
    const scs = files.filter((f) => /^rsna_cr_jpeg_baseline\.sc-\d+\.dcm$/.test(f)).sort();
    expect(scs.length).toBeGreaterThan(0);
    expect(scs[0]).toBe("rsna_cr_jpeg_baseline.sc-1.dcm");
    expect(files.some((f) => f.startsWith("00000001_000.") && f.endsWith(".dcm"))).toBe(false);
    const pms = files.filter((f) => /^rsna_cr_jpeg_baseline\.pm-[A-Za-z_]+\.dcm$/.test(f)).sort();
    for (const f of ["rsna_cr_jpeg_baseline.sr.dcm", ...scs, ...pms]) {
      const v = dciodvfy(join(out, f));
      expect(v.errors, v.output).toEqual([]);
      expect(unexplainedWarnings(v.warnings), v.output).toEqual([]);
    }
    const sr = readAiResultsSr(join(out, "rsna_cr_jpeg_baseline.sr.dcm"));
    expect(scs).toHaveLength(Math.max(1, sr.positives.length));
    // a map per positive finding, else one of the most probable; each named in the SR
    expect(pms).toHaveLength(Math.max(1, sr.positives.length));
    const mapped = sr.findings.filter((f) => f.parametricMap).map((f) => `rsna_cr_jpeg_baseline.pm-${f.label}.dcm`).sort();
    expect(mapped).toEqual(pms);
    // the JSON findings and the SR agree
    const json = JSON.parse(readFileSync(join(out, "rsna_cr_jpeg_baseline.json"), "utf8")) as { findings: { label: string; probability: number; positive: boolean }[] };
    expect(sr.findings.map((f) => [f.label, f.probability, f.positive])).toEqual(json.findings.map((f) => [f.label, f.probability, f.positive]));
  });

  it("--parametric-maps all writes all 14 maps, none writes none (and the SR then names no map)", () => {
    for (const [which, count] of [["all", 14], ["none", 0]] as const) {
      const dir = join(tmp.dir, `out-${which}`);
      const r = spawnSync(process.execPath, [join(repo, "bin/cxr.js"), "infer", join(SHARED_DICOM, "rsna_cr_jpeg_baseline.dcm"), "--model", join(tmp.dir, "model"), "--out", dir, "--dicom", "--parametric-maps", which],
        { cwd: repo, encoding: "utf8", timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(readdirSync(dir).filter((f) => f.includes(".pm-")), which).toHaveLength(count);
      expect(readAiResultsSr(join(dir, "rsna_cr_jpeg_baseline.sr.dcm")).findings.filter((f) => f.parametricMap), which).toHaveLength(count);
    }
    const bad = spawnSync(process.execPath, [join(repo, "bin/cxr.js"), "infer", join(SHARED_DICOM, "rsna_cr_jpeg_baseline.dcm"), "--model", join(tmp.dir, "model"), "--out", join(tmp.dir, "bad"), "--dicom", "--parametric-maps", "some"],
      { cwd: repo, encoding: "utf8", timeout: 60_000 });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--parametric-maps.*some.*(all|positive|none)/s);
  });
});
