import { describe, expect, it } from "vitest";
import { upsampleHeatmap } from "../../src/inference/classifier.ts";
import { deriveResultUids } from "../../src/results/input.ts";
import { buildParametricMaps, MAP_LEVELS, mapGeometry, mapPixels, mapSize } from "../../src/results/pm/map.ts";
import { readParametricMap } from "../../src/results/pm/read.ts";
import { mappedFindings } from "../../src/results/pm/selection.ts";
import { realWorldValues } from "../../src/results/pm/values.ts";
import { blobHeatmap, gradientImage, syntheticCard, syntheticResult, syntheticSource } from "./synthetic.ts";

type Item = Record<string, unknown>;
const card = syntheticCard();

describe("which findings get a Parametric Map", () => {
  it("positive (default): the positives in card order; none positive: the most probable; all; none", () => {
    const some = syntheticResult(card, { Effusion: 0.9, Atelectasis: 0.7 });
    expect(mappedFindings(some).map((f) => f.label)).toEqual(card.labels.map((l) => l.name).filter((l) => l === "Effusion" || l === "Atelectasis"));
    const none = syntheticResult(card, { Mass: 0.3, Nodule: 0.2 });
    expect(mappedFindings(none).map((f) => f.label)).toEqual(["Mass"]);
    expect(mappedFindings(none, "all")).toHaveLength(14);
    expect(mappedFindings(some, "none")).toEqual([]);
  });
});

describe("map geometry", () => {
  it("keeps the source's aspect with the longer side at most 512, and scales Pixel Spacing per axis", () => {
    expect(mapSize(1760, 2140)).toEqual({ columns: 421, rows: 512 });
    expect(mapSize(300, 200)).toEqual({ columns: 300, rows: 200 });
    const g = mapGeometry({ PixelSpacing: ["0.2", "0.2"], SOPInstanceUID: "2.25.1" }, 1760, 2140);
    expect(Number(g.pixelSpacing[0]) * 512).toBeCloseTo(0.2 * 2140, 6);
    expect(Number(g.pixelSpacing[1]) * 421).toBeCloseTo(0.2 * 1760, 6);
  });

  it("uses the source's Frame of Reference and plane when it has one, the first map pixel centre moved half a map pixel in", () => {
    const g = mapGeometry({
      SOPInstanceUID: "2.25.1", FrameOfReferenceUID: "1.2.3", PixelSpacing: ["1", "1"],
      ImagePositionPatient: ["10", "20", "30"], ImageOrientationPatient: ["1", "0", "0", "0", "1", "0"],
    }, 1024, 1024);
    expect(g.frameOfReferenceUid).toBe("1.2.3");
    // 1024 → 512: a map pixel is 2 source pixels, its centre 0.5 source pixels from the source's first centre
    expect(g.imagePositionPatient.map(Number)).toEqual([10.5, 20.5, 30]);
    expect(g.pixelSpacing).toEqual(["2", "2"]);
  });

  it("without a Frame of Reference (or without the plane or spacing to place the map in it): its own, derived from the source instance (stable), plane at the origin", () => {
    const noSpacing = mapGeometry({ SOPInstanceUID: "2.25.7", FrameOfReferenceUID: "1.2.3", ImagePositionPatient: ["10", "20", "30"], ImageOrientationPatient: ["1", "0", "0", "0", "1", "0"] }, 100, 100);
    expect(noSpacing.frameOfReferenceUid).not.toBe("1.2.3");
    expect(noSpacing.imagePositionPatient).toEqual(["0", "0", "0"]);
    const a = mapGeometry({ SOPInstanceUID: "2.25.7" }, 100, 100);
    expect(a.frameOfReferenceUid).toBe(mapGeometry({ SOPInstanceUID: "2.25.7" }, 100, 100).frameOfReferenceUid);
    expect(a.frameOfReferenceUid).not.toBe(mapGeometry({ SOPInstanceUID: "2.25.8" }, 100, 100).frameOfReferenceUid);
    expect(a.imagePositionPatient).toEqual(["0", "0", "0"]);
  });
});

describe("pixels and Real World Value Mapping", () => {
  it("stores heat as 0..4095 and maps it back within half a quantization step", () => {
    const h = blobHeatmap("Mass", 0.3, 0.6);
    const px = mapPixels(h, 64, 48);
    const m = { first: 0, last: MAP_LEVELS - 1, slope: 1 / (MAP_LEVELS - 1), intercept: 0 };
    const back = realWorldValues(px, m);
    const heat = upsampleHeatmap(h, 64, 48);
    for (let i = 0; i < heat.length; i++) expect(Math.abs(back[i]! - heat[i]!)).toBeLessThanOrEqual(0.5 / (MAP_LEVELS - 1) + 1e-6);
    expect(realWorldValues([0, 4095], m)).toEqual(new Float32Array([0, 1]));
    expect(realWorldValues([5000], { first: 0, last: 4095, slope: 1, intercept: 0 })[0]).toBeNaN();
  });

  it("a built map reads back: the finding's code, UCUM 1, the hot spot where the blob is", () => {
    const source = syntheticSource();
    const result = syntheticResult(card, { Effusion: 0.9 }, { Effusion: [0.25, 0.75] });
    const uids = deriveResultUids([String(source.SOPInstanceUID)], card.deviceUid);
    const [pm] = buildParametricMaps({ source, image: gradientImage(400, 300), result, uids, now: new Date(0) });
    expect(pm!.finding.label).toBe("Effusion");
    const map = readParametricMap(pm!.dataset);
    expect(map.label).toBe("Effusion");
    expect(map.unit.value).toBe("1");
    let peak = 0;
    for (let i = 1; i < map.values.length; i++) if (map.values[i]! > map.values[peak]!) peak = i;
    // the blob's grid is 8x8: its peak is within one grid cell of where it was put
    expect(Math.abs((peak % map.columns) / map.columns - 0.25)).toBeLessThan(1 / 8);
    expect(Math.abs(Math.floor(peak / map.columns) / map.rows - 0.75)).toBeLessThan(1 / 8);
    const shared = (pm!.dataset.SharedFunctionalGroupsSequence as Item[])[0]!;
    expect(((shared.RealWorldValueMappingSequence as Item[])[0]!).RealWorldValueSlope).toBeCloseTo(1 / 4095, 12);
    expect(pm!.dataset.SOPInstanceUID).toBe(uids.sopInstanceUidPm("Effusion"));
  });
});
