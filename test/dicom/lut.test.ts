import { afterAll, describe, expect, it } from "vitest";
import { decodeStoredFrame, readDicom } from "../../src/dicom/index.ts";
import { loadPresentationImage } from "../../src/image/index.ts";
import { tempDir } from "../helpers/tmp.ts";
import { lutItem, writeSynthetic } from "./synthetic.ts";

// Expected values below are worked out by hand from PS3.3 C.11 (formulas quoted per case), not by
// calling the code under test.
const tmp = tempDir("cxr-lut-");
afterAll(() => tmp.cleanup());

async function present(name: string, attrs: Record<string, unknown>, pixels: ArrayBufferView) {
  return loadPresentationImage(writeSynthetic(tmp.dir, name, attrs, pixels));
}
const expectValues = (actual: Float32Array, expected: number[]) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(actual[i], `pixel ${i}`).toBeCloseTo(e, 6));
};

describe("stored values (PS3.3 C.7.6.3.1, PS3.5 8.1.1)", () => {
  it("signed 12-bit in 16: bits above High Bit are masked and the value is sign-extended from bit 11", async () => {
    // raw 0xF800: stored bits 0x800 → -2048; 0x07FF → 2047; 0xA001 → 1; 0x1FFF → 0xFFF → -1
    const file = writeSynthetic(tmp.dir, "s12.dcm", { Rows: 2, Columns: 2, BitsStored: 12, HighBit: 11, PixelRepresentation: 1 }, new Uint16Array([0xf800, 0x07ff, 0xa001, 0x1fff]));
    const s = await decodeStoredFrame(readDicom(file));
    expect(Array.from(s.values)).toEqual([-2048, 2047, 1, -1]);
  });

  it("High Bit above Bits Stored - 1: values are shifted down from High Bit", async () => {
    // Bits Stored 10, High Bit 13: stored value sits in bits 4..13; low nibble and bits 14-15 are other data
    const stored = [0, 1023, 512, 3];
    const raw = new Uint16Array(stored.map((v) => 0xc000 | (v << 4) | 0xf));
    const file = writeSynthetic(tmp.dir, "hb.dcm", { Rows: 2, Columns: 2, BitsStored: 10, HighBit: 13 }, raw);
    expect(Array.from((await decodeStoredFrame(readDicom(file))).values)).toEqual(stored);
  });
});

describe("Modality LUT (PS3.3 C.11.1)", () => {
  it("signed 16-bit with Rescale Slope 2 / Intercept -100 and a LINEAR window", async () => {
    // modality = 2*stored - 100: [-65636, -2100, -100, 1900, 65434, 0]
    // LINEAR c=0 w=2001: x <= -1000.5 → 0; x > 999.5 → 1; else ((x + 0.5)/2000 + 0.5)
    //   -100 → 0.45025, 0 → 0.50025
    const img = await present(
      "signed.dcm",
      { Rows: 2, Columns: 3, PixelRepresentation: 1, RescaleSlope: "2", RescaleIntercept: "-100", WindowCenter: "0", WindowWidth: "2001" },
      new Int16Array([-32768, -1000, 0, 1000, 32767, 50]),
    );
    expectValues(img.data, [0, 0, 0.45025, 1, 1, 0.50025]);
    expect(img.steps).toEqual({ modality: "rescale 2/-100", voi: "window 0/2001 LINEAR", inversion: "none" });
  });

  it("Modality LUT Sequence replaces rescale; out-of-table inputs clamp to the first/last entry", async () => {
    // descriptor: 4 entries, first mapped 10; stored 5→100 (below), 10→100, 12→300, 13→400, 20→400 (above), 11→200
    // no VOI: full range of modality values present, 100..400 → y = (m - 100)/300
    const img = await present(
      "mlut.dcm",
      { Rows: 2, Columns: 3, RescaleSlope: "5", RescaleIntercept: "7", ModalityLUTSequence: [lutItem([4, 10, 16], [100, 200, 300, 400], { ModalityLUTType: "OD" })] },
      new Uint16Array([5, 10, 12, 13, 20, 11]),
    );
    expectValues(img.data, [0, 0, 2 / 3, 1, 1, 1 / 3]);
    expect(img.steps.modality).toBe("Modality LUT Sequence (4 entries from 10, 16 bits, OD)");
    expect(img.steps.voi).toBe("full range of modality values 100..400 (no VOI LUT or window)");
  });

  it("Modality LUT Sequence for signed pixels: first mapped value 65534 means -2", async () => {
    // stored -5→100 (clamped), -2→100, -1→200, 0→300, 1→400, 7→400 (clamped)
    const img = await present(
      "mlut-signed.dcm",
      { Rows: 2, Columns: 3, PixelRepresentation: 1, ModalityLUTSequence: [lutItem([4, 65534, 16], [100, 200, 300, 400])] },
      new Int16Array([-5, -2, -1, 0, 1, 7]),
    );
    expectValues(img.data, [0, 0, 1 / 3, 2 / 3, 1, 1]);
  });
});

describe("VOI (PS3.3 C.11.2)", () => {
  it("VOI LUT Sequence takes precedence over Window Center/Width; output / (2^bits - 1)", async () => {
    // descriptor: 3 entries from 0, 8 bits → [0, 128, 255] / 255; stored 5 clamps to the last entry
    const img = await present(
      "voilut.dcm",
      { Rows: 1, Columns: 4, WindowCenter: "1000", WindowWidth: "10", VOILUTSequence: [lutItem([3, 0, 8], [0, 128, 255], { LUTExplanation: "TEST" })] },
      new Uint16Array([0, 1, 2, 5]),
    );
    expectValues(img.data, [0, 128 / 255, 1, 1]);
    expect(img.steps.voi).toBe("VOI LUT Sequence (3 entries from 0, 8 bits, TEST)");
  });

  const xs = [75, 76, 100, 110, 124, 125, 126];
  it("LINEAR (C.11.2.1.2.1), c=100 w=50", async () => {
    // x <= c - 0.5 - (w-1)/2 = 75 → 0; x > c - 0.5 + (w-1)/2 = 124 → 1; else (x - 99.5)/49 + 0.5
    const img = await present("linear.dcm", { Rows: 1, Columns: 7, WindowCenter: "100", WindowWidth: "50" }, new Uint16Array(xs));
    expectValues(img.data, [0, -23.5 / 49 + 0.5, 0.5 / 49 + 0.5, 10.5 / 49 + 0.5, 1, 1, 1]);
  });
  it("LINEAR_EXACT (C.11.2.1.3.2), c=100 w=50", async () => {
    // x <= c - w/2 = 75 → 0; x > c + w/2 = 125 → 1; else (x - 100)/50 + 0.5
    const img = await present("exact.dcm", { Rows: 1, Columns: 7, WindowCenter: "100", WindowWidth: "50", VOILUTFunction: "LINEAR_EXACT" }, new Uint16Array(xs));
    expectValues(img.data, [0, 0.02, 0.5, 0.7, 0.98, 1, 1]);
    expect(img.steps.voi).toBe("window 100/50 LINEAR_EXACT");
  });
  it("SIGMOID (C.11.2.1.3.1), c=100 w=50", async () => {
    // y = 1 / (1 + exp(-4 (x - 100) / 50)): 75 → 1/(1+e^2), 76 → 1/(1+e^1.92), 110 → 1/(1+e^-0.8), 125 → 1/(1+e^-2)
    const img = await present("sigmoid.dcm", { Rows: 1, Columns: 7, WindowCenter: "100", WindowWidth: "50", VOILUTFunction: "SIGMOID" }, new Uint16Array(xs));
    expectValues(img.data, [0.1192029, 0.1278612, 0.5, 0.6899745, 0.8721388, 0.8807971, 0.8889444]);
  });
  it("uses the first of several windows", async () => {
    const img = await present("multiwin.dcm", { Rows: 1, Columns: 7, WindowCenter: ["100", "300"], WindowWidth: ["50", "600"] }, new Uint16Array(xs));
    expect(img.steps.voi).toBe("window 100/50 LINEAR (first of several)");
    expect(img.data[3]).toBeCloseTo(10.5 / 49 + 0.5, 6);
  });
});

describe("inversion (PS3.3 C.7.6.3.1.2, C.11.6), once, after VOI", () => {
  const pixels = new Uint16Array([75, 100, 110, 126]);
  const linear = [0, 0.5 / 49 + 0.5, 10.5 / 49 + 0.5, 1];
  const win = { Rows: 1, Columns: 4, WindowCenter: "100", WindowWidth: "50" };
  it("MONOCHROME1 is 1 - VOI output", async () => {
    const img = await present("m1.dcm", { ...win, PhotometricInterpretation: "MONOCHROME1" }, pixels);
    expectValues(img.data, linear.map((y) => 1 - y));
    expect(img.steps.inversion).toBe("MONOCHROME1 inverted");
  });
  it("MONOCHROME1 with Presentation LUT Shape INVERSE is inverted once, not twice", async () => {
    const img = await present("m1-inv.dcm", { ...win, PhotometricInterpretation: "MONOCHROME1", PresentationLUTShape: "INVERSE" }, pixels);
    expectValues(img.data, linear.map((y) => 1 - y));
  });
  it("MONOCHROME2 with Presentation LUT Shape INVERSE is inverted; IDENTITY is not", async () => {
    const inv = await present("m2-inv.dcm", { ...win, PresentationLUTShape: "INVERSE" }, pixels);
    expectValues(inv.data, linear.map((y) => 1 - y));
    expect(inv.steps.inversion).toBe("Presentation LUT Shape INVERSE");
    const id = await present("m2-id.dcm", { ...win, PresentationLUTShape: "IDENTITY" }, pixels);
    expectValues(id.data, linear);
  });
});
