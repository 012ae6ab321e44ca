import { describe, expect, it } from "vitest";
import { writeFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { destinationName, SOP_CLASS } from "../../src/config/service.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { startOrthanc } from "../../src/peers/orthanc.ts";
import { Exporter } from "../../src/export/exporter.ts";
import { PARAMETRIC_MAP_STORAGE } from "../../src/results/pm/map.ts";
import { readParametricMap } from "../../src/results/pm/read.ts";
import { readAiResultsSr } from "../../src/results/sr/read.ts";
import { CHEST_DICOM_FILES, requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { serviceFixture } from "./service-fixture.ts";
import { dciodvfyErrors, orthancStudyInstances, waitFor } from "./helpers.ts";
import { asNewStudy, compressedVariants, corruptCodestream } from "./inputs.ts";
import { echoscu, storescu, writeStorescuConfig } from "./peers.ts";

const AET = "CXR_E2E";
const SR_CLASSES = ["1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34"];

describe.runIf(requireSharedData())("service end to end: storescu → cxr → Orthanc", () => {
  const fx = serviceFixture({ tmpPrefix: "cxr-e2e-", aeTitle: AET, orthancRoutesToPlugin: true });
  const { tmp } = fx;
  const cfg = writeStorescuConfig(tmp.dir);

  async function expectResultsInOrthanc(studyUid: string, extra = 0): Promise<void> {
    const rec = (await fx.service.store.get(studyUid))!;
    expect(rec.state, `${studyUid}: ${rec.reason}`).toBe("exported");
    const instances = await orthancStudyInstances(fx.orthanc, studyUid);
    const sr = instances.filter((i) => SR_CLASSES.includes(i.sopClassUid));
    const sc = instances.filter((i) => i.sopClassUid === SOP_CLASS.SECONDARY_CAPTURE && i.sopInstanceUid !== undefined && rec.outputs?.sc?.includes(i.sopInstanceUid));
    const pm = instances.filter((i) => i.sopClassUid === PARAMETRIC_MAP_STORAGE);
    expect(sr.map((i) => i.sopInstanceUid)).toEqual([rec.outputs!.sr]);
    expect(sc.length).toBe(rec.outputs!.sc!.length);
    // the default: a map per positive finding, else one of the most probable
    expect(pm.map((i) => i.sopInstanceUid).sort()).toEqual([...rec.outputs!.pm!].sort());
    expect(pm.length).toBe(Math.max(1, rec.findings!.filter((f) => f.positive).length));
    expect(instances.length).toBe(1 + sc.length + pm.length + extra);
    for (const i of [...sr, ...sc, ...pm]) {
      const path = join(tmp.dir, `${i.id}.dcm`);
      writeFileSync(path, await fx.orthanc.bytes(`/instances/${i.id}/file`));
      expect(await dciodvfyErrors(path), `${i.modality} ${i.sopInstanceUid}`).toEqual([]);
      if (i.sopClassUid !== PARAMETRIC_MAP_STORAGE) continue;
      // the map in the PACS reads back to the plugin's own map, value for value, and the SR names it
      const local = (await fx.service.store.outputs(studyUid)).find((o) => o.sopInstanceUid === i.sopInstanceUid)!;
      const [fromPacs, written] = [readParametricMap(path), readParametricMap(local.path)];
      expect(fromPacs.values).toEqual(written.values);
      expect(readAiResultsSr((await fx.service.store.outputs(studyUid)).find((o) => o.kind === "sr")!.path).findings.find((f) => f.label === fromPacs.label)?.parametricMap).toBe(i.sopInstanceUid);
    }
  }

  it("each chest DICOM (and JPEG-LS, JPEG 2000, RLE versions) gives an SR, SC and Parametric Maps in Orthanc that pass dciodvfy", async () => {
    // The fake MONOCHROME1 copy is a gate case (test/service/gate-e2e.test.ts): it is not analysed.
    const files = CHEST_DICOM_FILES.filter((f) => !f.includes("monochrome1")).map((f) => join(SHARED_DICOM, f));
    const variants = compressedVariants(tmp.dir);
    expect(variants.map((v) => v.transferSyntaxUid)).toEqual(["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"]);
    const all = [...files, ...variants.map((v) => v.path)];
    const r = await storescu({ port: fx.port, aec: AET, cfg, files: all });
    expect(r.code, r.log).toBe(0);
    const studies = all.map((f) => String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID));
    // stored in the syntax they were sent in
    for (const v of variants) {
      const sop = String(readDicom(v.path, { withPixelData: false }).dataset.SOPInstanceUID);
      const study = String(readDicom(v.path, { withPixelData: false }).dataset.StudyInstanceUID);
      expect((await fx.service.store.instances(study)).find((i) => i.sopInstanceUid === sop)?.transferSyntaxUid).toBe(v.transferSyntaxUid);
    }
    await waitFor("all studies exported or failed", async () => (await Promise.all(studies.map((s) => fx.service.store.get(s)))).every((r) => ["exported", "failed", "rejected"].includes(r?.state ?? "")), 240_000);
    for (const s of studies) await expectResultsInOrthanc(s);
    const rec = (await fx.service.store.get(studies[0]!))!;
    expect(rec.findings).toHaveLength(14);
    expect(rec.heatmaps!.length).toBeGreaterThan(0);
    expect(rec.history.map((h) => h.state)).toEqual(["received", "queued", "processing", "done", "exported"]);
  }, 300_000);

  it("Orthanc → plugin: Orthanc's /modalities/cxr/store routes a study and the results come back", async () => {
    const copy = asNewStudy(join(SHARED_DICOM, "test2.dcm"), join(tmp.dir, "routed.dcm"));
    const study = String(readDicom(copy, { withPixelData: false }).dataset.StudyInstanceUID);
    const uploaded = await fx.orthanc.rest<{ ParentStudy: string }>("/instances", { body: (await import("node:fs")).readFileSync(copy) });
    await fx.orthanc.rest("/modalities/cxr/store", { body: { Resources: [uploaded.ParentStudy], Synchronous: true } });
    await waitFor("routed study exported", async () => ["exported", "failed"].includes((await fx.service.store.get(study))?.state ?? ""), 120_000);
    await expectResultsInOrthanc(study, 1);
  });

  it("gatekeeping: test4..6 are rejected with the reason recorded per series", async () => {
    const files = ["test4.dcm", "test5.dcm", "test6.dcm"].map((f) => asNewStudy(join(SHARED_DICOM, f), join(tmp.dir, `gate-${f}`)));
    expect((await storescu({ port: fx.port, aec: AET, cfg, files })).code).toBe(0);
    const studies = files.map((f) => String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID));
    await waitFor("gatekeeping decisions", async () => (await Promise.all(studies.map((s) => fx.service.store.get(s)))).every((r) => r?.state === "rejected"), 30_000);
    const reasons = (await Promise.all(studies.map((s) => fx.service.store.get(s)))).map((r) => r!.reason);
    expect(reasons[0]).toMatch(/body part RIBCAGE is not chest/);
    expect(reasons[1]).toMatch(/modality CT is not CR\/DX/);
    expect(reasons[2]).toMatch(/view XX \(PatientPosition\) is not PA\/AP/);
    for (const s of studies) expect(await fx.service.store.seriesDecisions(s)).toEqual([expect.objectContaining({ eligible: false })]);
  });

  it("a corrupt codestream fails its study with a clear reason, is quarantined, and the service keeps serving", async () => {
    const bad = corruptCodestream(join(tmp.dir, "chest-jpegls.dcm"), join(tmp.dir, "corrupt.dcm"));
    asNewStudy(bad, bad);
    const study = String(readDicom(bad, { withPixelData: false }).dataset.StudyInstanceUID);
    expect((await storescu({ port: fx.port, aec: AET, cfg, files: [bad] })).code).toBe(0);
    await waitFor("corrupt study failed", async () => (await fx.service.store.get(study))?.state === "failed", 30_000);
    expect((await fx.service.store.get(study))!.reason).toMatch(/decode failed for .*cannot be decoded/);
    const q = (await fx.service.store.quarantined()).filter((x) => x.studyInstanceUid === study);
    expect(q).toHaveLength(1);
    expect(readdirSync(join(tmp.dir, "data", "quarantine"))).toContain(q[0]!.path.split("/").pop());
    expect(await echoscu(fx.port, AET)).toBe(true);
    const next = asNewStudy(join(SHARED_DICOM, "test3.dcm"), join(tmp.dir, "after-corrupt.dcm"));
    const nextStudy = String(readDicom(next, { withPixelData: false }).dataset.StudyInstanceUID);
    expect((await storescu({ port: fx.port, aec: AET, cfg, files: [next] })).code).toBe(0);
    await waitFor("study after the corrupt one exported", async () => (await fx.service.store.get(nextStudy))?.state === "exported", 60_000);
  });

  it("STOW-RS destination: the results of a study go to a DICOMweb server (a second Orthanc)", async () => {
    const second = await startOrthanc({ dir: join(tmp.dir, "orthanc-stow") });
    try {
      const study = String(readDicom(join(SHARED_DICOM, "test1.dcm"), { withPixelData: false }).dataset.StudyInstanceUID);
      const url = `${second.httpUrl}/dicom-web`;
      const exporter = new Exporter({ store: fx.service.store, config: { ...fx.service.config, export: { ...fx.service.config.export, destinations: [{ kind: "stow", url, headers: {} }] } }, logger: pino({ level: "silent" }) });
      expect(await exporter.exportStudy(study)).toBeUndefined();
      const rec = (await fx.service.store.get(study))!;
      const uids = (await orthancStudyInstances(second, study)).map((i) => i.sopInstanceUid).sort();
      expect(uids).toEqual([rec.outputs!.sr!, ...rec.outputs!.sc!, ...rec.outputs!.pm!].sort());
      // recorded under the destination's name, one sent row per object
      const sent = (await fx.service.store.exports(study)).filter((e) => e.destination === destinationName({ kind: "stow", url, headers: {} }));
      expect(sent.map((e) => e.outputUid).sort()).toEqual(uids);
      expect(sent.every((e) => e.sent)).toBe(true);
    } finally {
      await second.stop();
    }
  });

  it("idempotent: the same study sent again gives no second set of results", async () => {
    const f = join(SHARED_DICOM, "test1.dcm");
    const study = String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID);
    const before = (await fx.service.store.get(study))!;
    // the source again, and one of our own SC heatmaps routed back by a PACS (a loop must not start)
    const ownSc = (await fx.service.store.outputs(study)).find((o) => o.kind === "sc")!;
    expect((await storescu({ port: fx.port, aec: AET, cfg, files: [f, ownSc.path] })).code).toBe(0);
    await waitFor("study settled again", async () => {
      const now = (await fx.service.store.get(study))!;
      return now.history.length > before.history.length && now.state === "exported";
    }, 30_000);
    expect((await fx.service.store.get(study))!.outputs).toEqual(before.outputs);
    const decisions = await fx.service.store.seriesDecisions(study);
    expect(decisions.find((d) => !d.eligible)?.reason).toBe("one of this plugin's own result objects");
    await expectResultsInOrthanc(study);
  });
});
