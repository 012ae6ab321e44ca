import { describe, expect, it } from "vitest";
import { dcmjs } from "../../src/dicom/dcmjs.ts";
import { buildParametricMaps } from "../../src/results/pm/map.ts";
import { buildStructuredReport } from "../../src/results/sr/document.ts";
import { deriveResultUids } from "../../src/results/input.ts";
import { upsampleHeatmap } from "../../src/inference/classifier.ts";
import { firstMultipartPart, heatFromParametricMap, parametricMapsFromSr } from "../../src/viewer-extension/lib/pmap.ts";
import { groupFindingLabel } from "../../src/viewer-extension/lib/sr.ts";
import type { DicomJson } from "../../src/viewer-extension/lib/dicomweb.ts";
import { gradientImage, syntheticCard, syntheticResult, syntheticSource } from "../results/synthetic.ts";

/** DICOM JSON (as WADO-RS metadata gives it) of a naturalized dataset, via dcmjs's denaturalizer. */
function asDicomJson(ds: Record<string, unknown>): DicomJson {
  const { PixelData: _p, ...rest } = ds;
  return dcmjs.data.DicomMetaDictionary.denaturalizeDataset(rest) as DicomJson;
}

const card = syntheticCard();
const source = syntheticSource();
const result = syntheticResult(card, { Effusion: 0.9, Mass: 0.8 }, { Effusion: [0.2, 0.3], Mass: [0.7, 0.8] });
const uids = deriveResultUids([String(source.SOPInstanceUID)], card.deviceUid);
const input = { source, image: gradientImage(320, 240), result, uids, now: new Date(0) };

describe("the viewer's Parametric Map reading (browser-side, on DICOM JSON)", () => {
  it("finds each finding's map and its series in the plugin's SR", () => {
    const refs = parametricMapsFromSr(asDicomJson(buildStructuredReport(input)), groupFindingLabel);
    expect(refs.map((r) => r.label).sort()).toEqual(["Effusion", "Mass"]);
    for (const r of refs) {
      expect(r.sopInstanceUid).toBe(uids.sopInstanceUidPm(r.label));
      expect(r.seriesInstanceUid).toBe(uids.seriesInstanceUidPm);
    }
  });

  it("turns metadata + frame 1 into 8-bit heat equal to the plugin's heat (within 8-bit rounding)", () => {
    for (const { finding, dataset } of buildParametricMaps(input)) {
      const frame = new Uint8Array((dataset.PixelData as ArrayBuffer[])[0]!);
      const h = heatFromParametricMap(asDicomJson(dataset), frame, "test map");
      expect(h.label).toBe(finding.label);
      const want = upsampleHeatmap(result.heatmaps.find((x) => x.label === finding.label)!, h.width, h.height);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(h.heat[i]! / 255 - want[i]!));
      expect(worst).toBeLessThan(0.6 / 255 + 1 / 4095);
    }
  });

  it("refuses a map that is not unitless heat, naming it", () => {
    const [{ dataset }] = buildParametricMaps(input);
    const md = asDicomJson(dataset);
    const rwvm = (md["52009229"]!.Value![0] as DicomJson)["00409096"]!.Value![0] as DicomJson;
    (rwvm["004008EA"]!.Value![0] as DicomJson)["00080100"] = { vr: "SH", Value: ["ms"] };
    expect(() => heatFromParametricMap(md, new Uint8Array(2 * 320 * 240), "map X")).toThrow(/map X: .*UCUM "1"; got ms/);
  });

  it("reads the frame out of a multipart/related answer", () => {
    const enc = new TextEncoder();
    const body = new Uint8Array([...enc.encode("--b1\r\nContent-Type: application/octet-stream\r\n\r\n"), 1, 2, 13, 10, 3, ...enc.encode("\r\n--b1--\r\n")]);
    expect([...firstMultipartPart(body, 'multipart/related; type="application/octet-stream"; boundary=b1')]).toEqual([1, 2, 13, 10, 3]);
  });
});
