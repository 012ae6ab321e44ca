import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readDicom } from "../../src/dicom/read.ts";
import { readAiResultsSr } from "../../src/results/sr/read.ts";
import type { ApiStudy, ApiStudyDetail } from "../../src/worklist/server.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { serviceFixture } from "./service-fixture.ts";
import { dciodvfy, unexplainedWarnings } from "../results/dicom3tools.ts";
import { orthancStudyInstances, waitFor } from "./helpers.ts";
import { asNewStudy } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const AET = "CXR_PRED";
const TOKEN = "predecessor-token-0123456789";
const SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34";

// #13 item 5: an instance re-sent with new pixels is processed again; the PACS then holds two SRs for
// one image, and the new one must say which it replaces (and the worklist that the result changed).
describe.runIf(requireSharedData())("an image re-sent with new pixels: storescu → cxr → Orthanc", () => {
  const fx = serviceFixture({ tmpPrefix: "cxr-pred-", aeTitle: AET, orthancRoutesToPlugin: true, apiTokens: [TOKEN] });
  const { tmp } = fx;

  it("the new SR names the SR it replaces (Predecessor Documents Sequence), passes dciodvfy, and the worklist shows the replacement", async () => {
    const cfg = writeStorescuConfig(tmp.dir);
    const first = asNewStudy(join(SHARED_DICOM, "test1.dcm"), join(tmp.dir, "first.dcm"));
    const ids = readDicom(first, { withPixelData: false }).dataset;
    const study = String(ids.StudyInstanceUID);
    // The same instance (patient, Study, Series, SOP Instance UIDs) with other pixels: test3's.
    const second = join(tmp.dir, "second.dcm");
    copyFileSync(join(SHARED_DICOM, "test3.dcm"), second);
    const same = { "0010,0020": ids.PatientID, "0020,000d": study, "0020,000e": ids.SeriesInstanceUID, "0008,0018": ids.SOPInstanceUID };
    execFileSync("dcmodify", ["-nb", ...Object.entries(same).flatMap(([tag, v]) => ["-m", `(${tag})=${String(v ?? "")}`]), second]);

    expect((await storescu({ port: fx.port, aec: AET, cfg, files: [first] })).code).toBe(0);
    const before = await waitFor("the first results exported", async () => { const rec = await fx.service.store.get(study); return rec?.state === "exported" ? rec : undefined; }, 120_000);
    const firstSr = before.outputs!.sr!;
    expect(before.outputs!.supersedes).toBeUndefined();

    expect((await storescu({ port: fx.port, aec: AET, cfg, files: [second] })).code).toBe(0);
    const after = await waitFor(
      "the new results exported",
      async () => {
        const rec = await fx.service.store.get(study);
        return rec?.state === "exported" && rec.outputs?.sr !== firstSr ? rec : undefined;
      },
      120_000,
    );
    const secondSr = after.outputs!.sr!;
    expect(after.outputs!.supersedes).toBe(firstSr);

    // Both SRs are in the PACS; the new one references the old by Study, Series and SOP Instance.
    const srs = (await orthancStudyInstances(fx.orthanc, study)).filter((i) => i.sopClassUid === SR_CLASS);
    expect(srs.map((i) => i.sopInstanceUid).sort()).toEqual([firstSr, secondSr].sort());
    const files = new Map<string, string>();
    for (const i of srs) {
      const path = join(tmp.dir, `${i.sopInstanceUid}.dcm`);
      writeFileSync(path, await fx.orthanc.bytes(`/instances/${i.id}/file`));
      files.set(i.sopInstanceUid, path);
    }
    const oldDs = readDicom(files.get(firstSr)!, { withPixelData: false }).dataset;
    const newDs = readDicom(files.get(secondSr)!, { withPixelData: false }).dataset;
    expect(newDs.PredecessorDocumentsSequence).toMatchObject([
      {
        StudyInstanceUID: study,
        ReferencedSeriesSequence: [{ SeriesInstanceUID: oldDs.SeriesInstanceUID, ReferencedSOPSequence: [{ ReferencedSOPClassUID: SR_CLASS, ReferencedSOPInstanceUID: firstSr }] }],
      },
    ]);
    expect(readAiResultsSr(files.get(secondSr)!).predecessors).toEqual([firstSr]);
    expect(readAiResultsSr(files.get(firstSr)!).predecessors).toEqual([]);
    const v = dciodvfy(files.get(secondSr)!);
    expect(v.errors, v.output).toEqual([]);
    expect(unexplainedWarnings(v.warnings), v.output).toEqual([]);

    // The worklist says the result was replaced, in the list and the study's detail.
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const list = (await (await fetch(`${fx.service.api!.url}/api/studies`, { headers: auth })).json()) as ApiStudy[];
    expect(list.find((s) => s.studyInstanceUid === study)?.supersedes).toBe(firstSr);
    const detail = (await (await fetch(`${fx.service.api!.url}/api/studies/${study}`, { headers: auth })).json()) as ApiStudyDetail;
    expect(detail.outputs).toMatchObject({ sr: secondSr, supersedes: firstSr });
    expect(detail.history.filter((h) => h.state === "done")).toHaveLength(2);

    // The first pixels once more (A → B → A): a third SR, not the first one again (which the PACS already
    // holds without a predecessor), and it names the second.
    expect((await storescu({ port: fx.port, aec: AET, cfg, files: [first] })).code).toBe(0);
    const third = await waitFor(
      "the third results exported",
      async () => {
        const rec = await fx.service.store.get(study);
        return rec?.state === "exported" && rec.outputs?.sr !== secondSr ? rec : undefined;
      },
      120_000,
    );
    expect(third.outputs!.sr).not.toBe(firstSr);
    expect(third.outputs!.supersedes).toBe(secondSr);
    const thirdSr = (await orthancStudyInstances(fx.orthanc, study)).find((i) => i.sopInstanceUid === third.outputs!.sr)!;
    const thirdPath = join(tmp.dir, "third.dcm");
    writeFileSync(thirdPath, await fx.orthanc.bytes(`/instances/${thirdSr.id}/file`));
    expect(readAiResultsSr(thirdPath).predecessors).toEqual([secondSr]);
  });
});
