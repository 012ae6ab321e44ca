import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

describe("Orthanc peer from the fixture configuration", () => {
  const tmp = tempDir();
  let orthanc: OrthancHandle;
  beforeAll(async () => {
    orthanc = await startOrthanc({ dir: tmp.dir });
  });
  afterAll(async () => {
    await orthanc?.stop();
    tmp.cleanup();
  });

  it("answers REST with the DICOMweb plugin loaded", async () => {
    const plugins = await orthanc.rest<string[]>("/plugins");
    expect(plugins).toContain("dicom-web");
  });

  it("stores a real chest DX sent by dcmtk storescu", () => {
    if (!requireSharedData()) return;
    execFileSync("storescu", ["-aec", orthanc.aet, "127.0.0.1", String(orthanc.dicomPort), join(SHARED_DICOM, "test1.dcm")]);
    return orthanc.rest<string[]>("/instances").then((ids) => expect(ids.length).toBe(1));
  });
});
