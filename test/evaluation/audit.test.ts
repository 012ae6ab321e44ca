import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.ts";
import { deriveUid } from "../../src/dicom/uid.ts";
import { toPart10Buffer } from "../../src/dicom/write.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { NIH_LABELS } from "../../src/model/labels.ts";
import { auditPacs } from "../../src/evaluation/audit.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { freePort } from "../../src/peers/ports.ts";
import { DatasetError, parseCsv, toCsv } from "../../src/training/dataset.ts";
import { requireSharedData, SHARED_NIH } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const has = requireSharedData();
const DX = "1.2.840.10008.5.1.4.1.1.1.1";

/** A DX (for presentation) instance around 8-bit gray pixels, as a modality would send an NIH film. */
function dxDataset(accession: string, patientId: string, pixels: Uint8Array, rows: number, cols: number): Record<string, unknown> {
  return {
    SOPClassUID: DX,
    SOPInstanceUID: deriveUid("audit-test", accession, "sop"),
    StudyInstanceUID: deriveUid("audit-test", accession, "study"),
    SeriesInstanceUID: deriveUid("audit-test", accession, "series"),
    Modality: "DX",
    PatientID: patientId,
    PatientName: `NIH^${patientId}`,
    AccessionNumber: accession,
    StudyDate: "20170101",
    BodyPartExamined: "CHEST",
    ViewPosition: "PA",
    PresentationIntentType: "FOR PRESENTATION",
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    Rows: rows,
    Columns: cols,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    PixelData: pixels.buffer.slice(pixels.byteOffset, pixels.byteOffset + pixels.byteLength),
    _vrMap: { PixelData: "OB" },
  };
}

describe.runIf(has)("cxr audit against a real Orthanc (QIDO-RS / WADO-RS)", () => {
  const tmp = tempDir("cxr-audit-");
  let orthanc: OrthancHandle;
  const model = join(tmp.dir, "model");
  const labels = join(tmp.dir, "audit-labels.csv");
  let dicomweb: string;
  let labelRows: (string | number)[][];

  beforeAll(async () => {
    initModelDir({ inputSize: 64, seed: 9, out: model });
    // CXR_AUDIT is a known modality of the PACS: Orthanc answers C-GET only to those.
    orthanc = await startOrthanc({ dir: join(tmp.dir, "orthanc"), modalities: { audit: ["CXR_AUDIT", "127.0.0.1", await freePort()] } });
    dicomweb = `${orthanc.httpUrl}/dicom-web`;
    const [header, ...all] = parseCsv(readFileSync(join(SHARED_NIH, "labels.csv"), "utf8"));
    const col = (n: string) => header!.indexOf(n);
    // 8 NIH films that cover positives and negatives of Effusion and Infiltration.
    const pick = [...all.filter((r) => r[col("Effusion")] === "1").slice(0, 3), ...all.filter((r) => r[col("Infiltration")] === "1").slice(0, 2), ...all.filter((r) => r[col("Effusion")] === "0" && r[col("Infiltration")] === "0").slice(0, 3)];
    const out: (string | number)[][] = [];
    for (const [i, r] of pick.entries()) {
      const accession = `NIH${String(i).padStart(4, "0")}`;
      const { data, info } = await sharp(join(SHARED_NIH, "images", r[col("Image")]!)).greyscale().raw().toBuffer({ resolveWithObject: true });
      await orthanc.rest("/instances", { method: "POST", body: toPart10Buffer(dxDataset(accession, r[col("PatientId")]!, new Uint8Array(data), info.height, info.width)) });
      out.push([accession, r[col("PatientId")]!, ...NIH_LABELS.map((l) => r[col(l)]!)]);
    }
    // An archived study whose pixel data is cut short: stored fine, unreadable as an image.
    await orthanc.rest("/instances", { method: "POST", body: toPart10Buffer(dxDataset("BROKEN01", "999", new Uint8Array(1000).fill(7), 512, 512)) });
    out.push(["BROKEN01", "999", ...NIH_LABELS.map((_, j) => (j % 2 ? 1 : 0))]);
    // A labelled accession the PACS does not have.
    out.push(["MISSING01", "998", ...NIH_LABELS.map(() => 0)]);
    writeFileSync(labels, toCsv(["AccessionNumber", "PatientId", ...NIH_LABELS], out));
    labelRows = out;
  }, 180_000);
  afterAll(async () => {
    await orthanc?.stop();
    tmp.cleanup();
  });

  it("evaluates the archived NIH studies, lists the unreadable and missing ones with the reason, and resumes", async () => {
    const out = join(tmp.dir, "audit");
    const err: string[] = [];
    const write = process.stderr.write;
    const stdout: string[] = [];
    const wo = process.stdout.write;
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    process.stdout.write = ((s: string) => (stdout.push(String(s)), true)) as typeof process.stdout.write;
    let code: number;
    try {
      code = await main(["node", "cxr", "audit", "--dicomweb", dicomweb, "--labels", labels, "--model", model, "--out", out, "--bootstrap", "100"]);
    } finally {
      process.stderr.write = write;
      process.stdout.write = wo;
    }
    expect(code, err.join("")).toBe(0);
    expect(err.join("")).toMatch(/audit \[/); // progress
    const metrics = JSON.parse(readFileSync(join(out, "metrics.json"), "utf8"));
    expect(metrics.n_images).toBe(8);
    const reasons = new Map<string, string>(metrics.skipped.map((s: { key: string; reason: string }) => [s.key, s.reason]));
    expect([...reasons.keys()].sort()).toEqual(["AccessionNumber BROKEN01", "AccessionNumber MISSING01"]);
    expect(reasons.get("AccessionNumber MISSING01")).toContain("no study with AccessionNumber MISSING01");
    expect(reasons.get("AccessionNumber BROKEN01")).toMatch(/study 2\.25\.\d+, instance 2\.25\.\d+: .+/);
    console.log(`audit: BROKEN01 → ${reasons.get("AccessionNumber BROKEN01")}`);
    expect(metrics.labels.Effusion.n_pos).toBe(3);
    expect(metrics.labels.Effusion.auroc).not.toBeNull();
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("BROKEN01");
    expect(html).toContain("MISSING01");
    const preds = parseCsv(readFileSync(join(out, "predictions.csv"), "utf8"));
    expect(preds).toHaveLength(9);

    // Interrupted after 4 rows: the rerun takes those from the state and does only the rest.
    const state = readFileSync(join(out, "audit-state.jsonl"), "utf8").trim().split("\n");
    expect(state).toHaveLength(10);
    writeFileSync(join(out, "audit-state.jsonl"), state.slice(0, 4).join("\n") + "\n");
    const again = await auditPacs({ dicomweb, labels, model, out, bootstrapIterations: 100, progress: false, log: () => {} });
    expect(again.resumed).toBe(4);
    expect(again.metrics.labels).toEqual(metrics.labels);
    expect(readFileSync(join(out, "audit-state.jsonl"), "utf8").trim().split("\n")).toHaveLength(10);

    // Killed while writing row 5: its line is torn (no newline). It is reported, the row is done again, and the
    // outcomes appended after it stay lines of their own.
    writeFileSync(join(out, "audit-state.jsonl"), state.slice(0, 4).join("\n") + "\n" + state[4]!.slice(0, 20));
    const logged: string[] = [];
    const torn = await auditPacs({ dicomweb, labels, model, out, bootstrapIterations: 100, progress: false, log: (l) => logged.push(l) });
    expect(torn.resumed).toBe(4);
    expect(torn.metrics.labels).toEqual(metrics.labels);
    expect(logged.join("\n")).toMatch(/audit-state\.jsonl:5: unreadable state line/);
    const parsed = readFileSync(join(out, "audit-state.jsonl"), "utf8").trim().split("\n").filter((l) => { try { JSON.parse(l); return true; } catch { return false; } });
    expect(parsed).toHaveLength(10);

    // The rows that were not evaluated (BROKEN01, MISSING01) are tried again on the next run, not taken as done.
    const retry = await auditPacs({ dicomweb, labels, model, out, bootstrapIterations: 100, progress: false, log: () => {} });
    expect(retry.resumed).toBe(8);
    expect(retry.metrics.skipped.map((x) => x.key).sort()).toEqual(["AccessionNumber BROKEN01", "AccessionNumber MISSING01"]);
    expect(retry.metrics.labels).toEqual(metrics.labels);
  }, 300_000);

  it("cxr audit --dimse (C-FIND + C-GET against Orthanc's query/retrieve SCP) reads the same studies and gives the same AUROCs as over DICOMweb", async () => {
    const web = join(tmp.dir, "audit-web");
    const viaDimse = join(tmp.dir, "audit-dimse");
    const quiet = async (args: string[]) => {
      const we = process.stderr.write;
      const wo = process.stdout.write;
      const err: string[] = [];
      process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
      process.stdout.write = (() => true) as typeof process.stdout.write;
      try {
        return { code: await main(["node", "cxr", "audit", ...args, "--labels", labels, "--model", model, "--bootstrap", "100"]), err: err.join("") };
      } finally {
        process.stderr.write = we;
        process.stdout.write = wo;
      }
    };
    const t0 = Date.now();
    const a = await quiet(["--dicomweb", dicomweb, "--out", web]);
    expect(a.code, a.err).toBe(0);
    const b = await quiet(["--dimse", `${orthanc.aet}@127.0.0.1:${orthanc.dicomPort}`, "--calling-aet", "CXR_AUDIT", "--out", viaDimse]);
    expect(b.code, b.err).toBe(0);
    console.log(`audits: DICOMweb + DIMSE ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const mw = JSON.parse(readFileSync(join(web, "metrics.json"), "utf8"));
    const md = JSON.parse(readFileSync(join(viaDimse, "metrics.json"), "utf8"));
    expect(md.n_images).toBe(8);
    expect(md.labels).toEqual(mw.labels);
    expect(md.mean_auroc).toBe(mw.mean_auroc);
    expect(readFileSync(join(viaDimse, "predictions.csv"), "utf8")).toBe(readFileSync(join(web, "predictions.csv"), "utf8"));
    expect(md.skipped.map((s: { key: string }) => s.key).sort()).toEqual(["AccessionNumber BROKEN01", "AccessionNumber MISSING01"]);
    expect(md.skipped.find((s: { key: string }) => s.key === "AccessionNumber MISSING01").reason).toBe("no study with AccessionNumber MISSING01 in the PACS");
    expect(readFileSync(join(viaDimse, "report.html"), "utf8")).toContain(`PACS (DIMSE C-FIND/C-GET) ${orthanc.aet}@127.0.0.1:${orthanc.dicomPort}`);
    // resumable as the DICOMweb audit: a second run takes the 8 evaluated rows from its state
    const again = await auditPacs({ dimse: { aeTitle: orthanc.aet, host: "127.0.0.1", port: orthanc.dicomPort, callingAeTitle: "CXR_AUDIT" }, labels, model, out: viaDimse, bootstrapIterations: 100, progress: false, log: () => {} });
    expect(again.resumed).toBe(8);
    // an AE title the PACS does not know gets no images (Orthanc 1.10 leaves its C-GET unanswered): each row is listed with the reason
    const two = join(tmp.dir, "two-labels.csv");
    writeFileSync(two, toCsv(["AccessionNumber", "PatientId", ...NIH_LABELS], [labelRows[0]!, labelRows[labelRows.length - 1]!]));
    const stranger = await auditPacs({ dimse: { aeTitle: orthanc.aet, host: "127.0.0.1", port: orthanc.dicomPort, callingAeTitle: "STRANGER", timeoutSeconds: 3 }, labels: two, model, out: join(tmp.dir, "audit-stranger"), bootstrapIterations: 10, progress: false, log: () => {} });
    expect(stranger.metrics.n_images).toBe(0);
    expect(stranger.metrics.skipped.find((x) => x.key === "AccessionNumber MISSING01")!.reason).toBe("no study with AccessionNumber MISSING01 in the PACS");
    expect(stranger.metrics.skipped.find((x) => x.key === "AccessionNumber NIH0000")!.reason).toMatch(/^C-GET \(study 2\.25\.\d+\) at ORTHANC@127\.0\.0\.1:\d+: /);
    console.log(`dimse audit as stranger: ${stranger.metrics.skipped[0]!.reason}`);
  }, 300_000);

  it("lists a study whose only image is a lateral view as not read, with the series selection's reason", async () => {
    // A ramp, not a constant: blank images are refused on reading.
    const gray = Uint8Array.from({ length: 64 * 64 }, (_, i) => (i % 64) * 4);
    // Stored fine and readable as an image; the PACS lists it as DX, but the plugin would never read a lateral.
    await orthanc.rest("/instances", { method: "POST", body: toPart10Buffer({ ...dxDataset("LATERAL01", "997", gray, 64, 64), ViewPosition: "LL" }) });
    // A study with a lateral series beside its PA series: the PA image is the one read, whatever order the PACS lists them in.
    const pa = dxDataset("TWOVIEW01", "996", gray, 64, 64);
    const lateral = { ...pa, SeriesInstanceUID: deriveUid("audit-test", "TWOVIEW01", "lateral-series"), SOPInstanceUID: deriveUid("audit-test", "TWOVIEW01", "lateral-sop"), ViewPosition: "LL" };
    for (const ds of [lateral, pa]) await orthanc.rest("/instances", { method: "POST", body: toPart10Buffer(ds) });
    const lateralLabels = join(tmp.dir, "lateral-labels.csv");
    writeFileSync(lateralLabels, toCsv(["AccessionNumber", "PatientId", ...NIH_LABELS], [...labelRows.slice(0, 2), ["LATERAL01", "997", ...NIH_LABELS.map(() => 0)], ["TWOVIEW01", "996", ...NIH_LABELS.map(() => 0)]]));
    const out = join(tmp.dir, "audit-lateral");
    const r = await auditPacs({ dicomweb, labels: lateralLabels, model, out, bootstrapIterations: 10, progress: false, log: () => {} });
    expect(r.metrics.n_images, JSON.stringify(r.metrics.skipped)).toBe(3);
    expect(r.metrics.skipped).toHaveLength(1);
    expect(r.metrics.skipped[0]!.key).toBe("AccessionNumber LATERAL01");
    expect(r.metrics.skipped[0]!.reason).toMatch(/^study 2\.25\.\d+: not read by the plugin's selection: no eligible series: view LL \(ViewPosition\) is not PA\/AP$/);
    expect(readFileSync(join(out, "report.html"), "utf8")).toContain("view LL (ViewPosition) is not PA/AP");
    expect(existsSync(join(out, "instances", `${deriveUid("audit-test", "LATERAL01", "sop")}.dcm`))).toBe(false);
    const state = readFileSync(join(out, "audit-state.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { key: string; sopInstanceUid?: string });
    expect(state.find((o) => o.key === "TWOVIEW01")?.sopInstanceUid).toBe(pa.SOPInstanceUID);
  }, 120_000);

  it("refuses labels keyed by image file name before auditing any row", async () => {
    const byImage = join(tmp.dir, "by-image.csv");
    writeFileSync(byImage, toCsv(["Image", "PatientId", ...NIH_LABELS], [["a.png", "1", ...NIH_LABELS.map(() => 0)]]));
    const out = join(tmp.dir, "audit-by-image");
    await expect(auditPacs({ dicomweb, labels: byImage, model, out, progress: false, log: () => {} })).rejects.toThrow(new DatasetError(`${byImage}: cxr audit needs labels keyed by AccessionNumber or SOPInstanceUID, not Image`));
    expect(existsSync(join(out, "audit-state.jsonl"))).toBe(false);
  });
});
