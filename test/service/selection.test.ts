import { describe, expect, it } from "vitest";
import { selectionConfigSchema } from "../../src/config/service.ts";
import { judgeInstance, selectStudy } from "../../src/intake/selection.ts";
import type { InstanceHeader, InstanceRecord } from "../../src/store/types.ts";

const cfg = selectionConfigSchema.parse({});
let n = 0;
function inst(header: InstanceHeader, over: Partial<InstanceRecord> = {}): InstanceRecord {
  n++;
  return {
    sopInstanceUid: `1.2.3.${n}`, sopClassUid: "1.2.840.10008.5.1.4.1.1.1.1", studyInstanceUid: "1.2.3", seriesInstanceUid: over.seriesInstanceUid ?? `1.2.3.9.${n}`,
    transferSyntaxUid: "1.2.840.10008.1.2.1", path: `/x/${n}.dcm`, sha256: "0", size: 1, callingAeTitle: "M", receivedAt: "", header, ...over,
  };
}
const chest = { modality: "DX", bodyPartExamined: "CHEST" };

describe("series selection", () => {
  it("accepts frontal chest CR/DX by ViewPosition and its fallbacks", () => {
    expect(judgeInstance(inst({ ...chest, viewPosition: "PA" }), cfg)).toMatchObject({ eligible: true, view: "PA" });
    expect(judgeInstance(inst({ ...chest, viewCodeMeaning: "antero-posterior", viewCodeValue: "R-10206" }), cfg)).toMatchObject({ eligible: true, view: "AP" });
    expect(judgeInstance(inst({ ...chest, imageComments: "CHEST PA ERECT" }), cfg)).toMatchObject({ eligible: true, view: "PA" });
    expect(judgeInstance(inst({ ...chest, patientOrientation: "L\\F" }), cfg)).toMatchObject({ eligible: true, view: "FRONTAL" });
    expect(judgeInstance(inst({ ...chest }), cfg)).toMatchObject({ eligible: true, reason: expect.stringMatching(/view unknown/) });
    expect(judgeInstance(inst({ ...chest }), { ...cfg, unknownView: "reject" })).toMatchObject({ eligible: false });
  });

  it("rejects laterals, non-chest, other modalities, derived images, and its own outputs, saying why", () => {
    expect(judgeInstance(inst({ ...chest, viewPosition: "LL" }), cfg).reason).toBe("view LL (ViewPosition) is not PA/AP");
    expect(judgeInstance(inst({ ...chest, patientOrientation: "P\\F" }), cfg).reason).toMatch(/view P\\F \(PatientOrientation\)/);
    expect(judgeInstance(inst({ ...chest, bodyPartExamined: "SKULL" }), cfg).reason).toBe("body part SKULL is not chest");
    expect(judgeInstance(inst({ modality: "MG", bodyPartExamined: "CHEST" }), cfg).reason).toBe("modality MG is not CR/DX");
    expect(judgeInstance(inst({ ...chest, imageType: ["DERIVED", "SECONDARY"] }), cfg).reason).toBe("Image Type DERIVED\\SECONDARY: value 2 is SECONDARY");
    expect(judgeInstance(inst({ ...chest, manufacturer: "cxr-triage" }), cfg).reason).toMatch(/its own output/);
    expect(judgeInstance(inst({ ...chest, contributingManufacturers: ["CXR-TRIAGE"] }), cfg).reason).toMatch(/Contributing Equipment/);
    expect(judgeInstance(inst(chest, { sopClassUid: "1.2.840.10008.5.1.4.1.1.88.34" }), cfg).reason).toMatch(/structured report/);
    const own = inst({ ...chest, viewPosition: "PA" });
    expect(judgeInstance(own, cfg, new Set([own.sopInstanceUid])).reason).toBe("one of this plugin's own result objects");
  });

  it("empty body part follows the policy", () => {
    const empty = inst({ modality: "CR", viewPosition: "PA", studyDescription: "XR CHEST 2 VIEWS" });
    const bare = inst({ modality: "CR", viewPosition: "PA" });
    expect(judgeInstance(empty, cfg).eligible).toBe(true);
    expect(judgeInstance(bare, cfg).reason).toMatch(/no description mentions the chest/);
    expect(judgeInstance(bare, { ...cfg, emptyBodyPart: "accept" }).eligible).toBe(true);
    expect(judgeInstance(empty, { ...cfg, emptyBodyPart: "reject" }).reason).toBe("Body Part Examined is empty");
  });

  it("a study picks PA over AP and records each series' decision", () => {
    const ap = inst({ ...chest, viewPosition: "AP" });
    const pa = inst({ ...chest, viewPosition: "PA" });
    const lat = inst({ ...chest, viewPosition: "LATERAL" });
    const s = selectStudy([ap, lat, pa], cfg);
    expect(s.chosen?.sopInstanceUid).toBe(pa.sopInstanceUid);
    expect(s.series.filter((d) => d.eligible)).toHaveLength(2);
    expect(s.series.find((d) => d.seriesInstanceUid === lat.seriesInstanceUid)).toMatchObject({ eligible: false, reason: "view LATERAL (ViewPosition) is not PA/AP" });
    const none = selectStudy([lat], cfg);
    expect(none.chosen).toBeUndefined();
    expect(none.reason).toBe("no eligible series: view LATERAL (ViewPosition) is not PA/AP");
  });

  it("Image Type is judged per position (PS3.3 C.7.6.1.1.2): DERIVED\\PRIMARY films are read, SECONDARY and non-diagnostic value 3 terms are not", () => {
    const pa = { ...chest, viewPosition: "PA" };
    expect(judgeInstance(inst({ ...pa, imageType: ["DERIVED", "PRIMARY"] }), cfg)).toMatchObject({ eligible: true });
    expect(judgeInstance(inst({ ...pa, imageType: ["ORIGINAL", "PRIMARY", "", "RT"] }), cfg)).toMatchObject({ eligible: true });
    expect(judgeInstance(inst({ ...pa, imageType: ["ORIGINAL", "SECONDARY"] }), cfg).reason).toBe("Image Type ORIGINAL\\SECONDARY: value 2 is SECONDARY");
    expect(judgeInstance(inst({ ...pa, imageType: ["DERIVED", "PRIMARY", "LOCALIZER"] }), cfg).reason).toBe("Image Type DERIVED\\PRIMARY\\LOCALIZER: value 3+ is LOCALIZER");
    expect(judgeInstance(inst({ ...pa, imageType: ["DERIVED", "SECONDARY", "SCREEN SAVE"] }), cfg).reason).toMatch(/value 2 is SECONDARY/);
    // a term counts only at its own position: SECONDARY as value 3 is not value 2
    expect(judgeInstance(inst({ ...pa, imageType: ["ORIGINAL", "PRIMARY", "SECONDARY"] }), cfg)).toMatchObject({ eligible: true });
    const strict = selectionConfigSchema.parse({ rejectImageTypes: { value1: ["DERIVED"] } });
    expect(strict.rejectImageTypes.value2).toEqual(["SECONDARY"]);
    expect(judgeInstance(inst({ ...pa, imageType: ["DERIVED", "PRIMARY"] }), strict).reason).toBe("Image Type DERIVED\\PRIMARY: value 1 is DERIVED");
  });

  it("the old flat rejectImageTypes list is refused with the per-position form named", () => {
    const r = selectionConfigSchema.safeParse({ rejectImageTypes: ["DERIVED", "SECONDARY"] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toMatch(/per position: \{value1/);
  });
});
