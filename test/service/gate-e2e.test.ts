import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SOP_CLASS } from "../../src/config/service.ts";
import { dcmjs } from "../../src/dicom/dcmjs.ts";
import { readDicom } from "../../src/dicom/read.ts";
import { ImageGate } from "../../src/gate/gate.ts";
import { prioritize } from "../../src/worklist/priority.ts";
import { requireSharedData, SHARED_DICOM } from "../helpers/shared-data.ts";
import { serviceFixture } from "./service-fixture.ts";
import { dciodvfyErrors, orthancStudyInstances, waitFor } from "./helpers.ts";
import { asNewStudy } from "./inputs.ts";
import { storescu, writeStorescuConfig } from "./peers.ts";

const AET = "CXR_GATE";
const studyOf = (f: string) => String(readDicom(f, { withPixelData: false }).dataset.StudyInstanceUID);

/** A copy of a shared file as a new study, its header rewritten with dcmodify (-i inserts or overwrites). */
function rewritten(src: string, out: string, tags: Record<string, string>): string {
  asNewStudy(join(SHARED_DICOM, src), out);
  execFileSync("dcmodify", ["-nb", ...Object.entries(tags).flatMap(([t, v]) => ["-i", `${t}=${v}`]), out]);
  return out;
}

/** A copy of an uncompressed 8-bit square shared film as a new study, its pixels replaced by `f(pixels, side)`. */
function withPixels(src: string, out: string, f: (px: Uint8Array, side: number) => Uint8Array): string {
  const b = readFileSync(join(SHARED_DICOM, src));
  const file = dcmjs.data.DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  const dict = file.dict as Record<string, { Value: unknown[] }>;
  const side = dict["00280010"]!.Value[0] as number;
  const px = new Uint8Array(dict["7FE00010"]!.Value[0] as ArrayBuffer);
  dict["7FE00010"]!.Value = [f(px, side).buffer];
  writeFileSync(out, Buffer.from(file.write()));
  return asNewStudy(out, out);
}
const rotate90 = (px: Uint8Array, n: number) => {
  const o = new Uint8Array(px.length);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) o[y * n + x] = px[(n - 1 - x) * n + y]!;
  return o;
};

describe.runIf(requireSharedData())("image-content gate and Image Type selection in the service (storescu → cxr → Orthanc)", () => {
  const fx = serviceFixture({
    tmpPrefix: "cxr-gate-e2e-",
    aeTitle: AET,
    acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.SECONDARY_CAPTURE],
    gate: () => ImageGate.load(),
  });
  const { tmp } = fx;
  const cfg = writeStorescuConfig(tmp.dir);

  it("a DERIVED\\PRIMARY chest CR is triaged and exported with its SR; faulty images are 'not analysed' with the reason, nothing sent", async () => {
    const derived = rewritten("rsna_cr_jpeg_baseline.dcm", join(tmp.dir, "derived.dcm"), {
      "(0008,0008)": "DERIVED\\PRIMARY",
      "(0008,0016)": SOP_CLASS.CR,
    });
    const mono1 = asNewStudy(join(SHARED_DICOM, "rsna_cr_jpeg_baseline_fake_monochrome1.dcm"), join(tmp.dir, "mono1.dcm"));
    // the shared hip CR (NEMA WG04 RG2), its header claiming a chest PA
    const hip = rewritten("RG2_JPLL.dcm", join(tmp.dir, "hip.dcm"), { "(0018,0015)": "CHEST", "(0018,5101)": "PA" });
    const rotated = withPixels("test2.dcm", join(tmp.dir, "rotated.dcm"), rotate90);
    // near-constant (a constant one is already refused by the decoder): 127..129
    const blank = withPixels("test3.dcm", join(tmp.dir, "blank.dcm"), (px) => px.map((_, i) => 127 + (i % 3)));
    const files = [derived, mono1, hip, rotated, blank];
    const r = await storescu({ port: fx.port, aec: AET, cfg, files });
    expect(r.code, r.log).toBe(0);
    const [sDerived, ...faulty] = files.map(studyOf);
    await waitFor("all studies settled", async () => (await Promise.all([sDerived!, ...faulty].map((s) => fx.service.store.get(s)))).every((r) => ["exported", "failed", "rejected"].includes(r?.state ?? "")), 120_000);

    const rec = (await fx.service.store.get(sDerived!))!;
    expect(rec.state, rec.reason).toBe("exported");
    const inOrthanc = await orthancStudyInstances(fx.orthanc, sDerived!);
    const sr = inOrthanc.find((i) => i.sopInstanceUid === rec.outputs!.sr)!;
    expect(sr).toBeDefined();
    const path = join(tmp.dir, "derived-sr.dcm");
    writeFileSync(path, await fx.orthanc.bytes(`/instances/${sr.id}/file`));
    expect(await dciodvfyErrors(path)).toEqual([]);

    const reasons = (await Promise.all(faulty.map((s) => fx.service.store.get(s)))).map((r) => r!);
    expect(reasons.map((x) => `${x.state}: ${x.reason}`)).toEqual(reasons.map((x) => `rejected: ${x.reason}`));
    expect(reasons[0]!.reason).toMatch(/^not analysed: inverted polarity \(score /);
    expect(reasons[1]!.reason).toMatch(/^not analysed: not a chest radiograph/);
    expect(reasons[2]!.reason).toMatch(/^not analysed: rotated by (90|270)°/);
    // three stored values: after test3's VOI it is caught as too few grey levels (the blank check measures spread)
    expect(reasons[3]!.reason).toMatch(/^not analysed: (too few grey levels \(3 < 32\)|blank or near-constant image)/);
    for (const x of reasons) {
      expect(x.findings ?? []).toEqual([]);
      expect(await orthancStudyInstances(fx.orthanc, x.studyInstanceUid)).toEqual([]);
      const p = prioritize(x, fx.service.config.priority);
      expect(p.priority).toBe("review");
      expect(p.reason).toContain(x.reason);
    }
    expect(prioritize(reasons[0]!, fx.service.config.priority)).toMatchObject({ priority: "review", reason: expect.stringMatching(/^not analysed: inverted polarity .* — read without AI$/) });
    const metrics = await fx.service.metrics.registry.metrics();
    expect(metrics).toMatch(/^cxr_gate_failures_total\{check="inverted"\} 1$/m);
    expect(metrics).toMatch(/^cxr_gate_failures_total\{check="not a chest radiograph"\} 1$/m);
  }, 180_000);
});
