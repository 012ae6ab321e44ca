import { join } from "node:path";
import sharp from "sharp";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.ts";
import { SHARED_DICOM, SHARED_NIH, requireSharedData } from "../helpers/shared-data.ts";
import { tempDir } from "../helpers/tmp.ts";

const HAVE = requireSharedData();
const tmp = tempDir("cxr-cli-");
afterAll(() => tmp.cleanup());
afterEach(() => vi.restoreAllMocks());

/** Runs the CLI in-process, capturing stdout and stderr. */
async function cxr(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  const code = await main(["node", "cxr", ...args]);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

describe.skipIf(!HAVE)("cxr inspect / cxr pixels", () => {
  it("inspect --json reports the pixel module, identification and the steps applied", async () => {
    const r = await cxr("inspect", join(SHARED_DICOM, "rsna_cr_jpeg_baseline_fake_monochrome1.dcm"), "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({
      transferSyntaxUid: "1.2.840.10008.1.2.4.50",
      photometricInterpretation: "MONOCHROME1",
      rows: 1024,
      columns: 1024,
      bitsAllocated: 8,
      bitsStored: 8,
      pixelRepresentation: 0,
      modality: "CR",
    });
    for (const k of ["bodyPartExamined", "viewPosition"]) expect(j).toHaveProperty(k);
    expect(j.steps).toMatchObject({ modality: "identity (no Modality LUT)", inversion: "MONOCHROME1 inverted" });
    expect((j.steps as { voi: string }).voi).toMatch(/^full range of modality values/);
  });

  it("inspect --json on RG2 names its window and decoder", async () => {
    const j = JSON.parse((await cxr("inspect", join(SHARED_DICOM, "RG2_J2KI.dcm"), "--json")).stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ transferSyntaxUid: "1.2.840.10008.1.2.4.91", bitsStored: 10, bodyPartExamined: "HIP" });
    expect(j.decoder).toMatch(/jpeg2000/);
    expect((j.steps as { voi: string }).voi).toBe("window 511/1024 LINEAR");
  });

  it("pixels on a PNG input writes a 16-bit PNG of the same size", async () => {
    const out = join(tmp.dir, "nih.png");
    expect((await cxr("pixels", join(SHARED_NIH, "images", "00000001_000.png"), "--out", out)).code).toBe(0);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height, meta.depth, meta.channels]).toEqual([512, 512, "ushort", 1]);
  });

  it("fails with exit 1 and one line naming the file and reason", async () => {
    const sr = join(SHARED_DICOM, "sr_document.dcm");
    const r = await cxr("pixels", sr, "--out", join(tmp.dir, "sr.png"));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(sr);
    expect(r.stderr).toMatch(/not an image: no Pixel Data/);
    const i = await cxr("inspect", join(tmp.dir, "missing.dcm"), "--json");
    expect(i.code).toBe(1);
    expect(i.stderr).toMatch(/missing\.dcm: cannot read file \(ENOENT\)/);
  });
});
