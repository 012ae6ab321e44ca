import { describe, expect, it } from "vitest";
import { deriveResultUids } from "../../src/results/input.ts";
import { copyPatientAndStudy, sourceReference, validPatientAge } from "../../src/results/source.ts";
import { syntheticSource } from "./synthetic.ts";

describe("Patient's Age repair rule", () => {
  it("keeps a valid AS value", () => {
    expect(validPatientAge("081Y", undefined, undefined)).toEqual({ age: "081Y" });
    expect(validPatientAge("006M", undefined, undefined)).toEqual({ age: "006M" });
  });
  it("repairs a bare number to years only when birth and study dates confirm it", () => {
    expect(validPatientAge("81", "19300105", "20110601").age).toBe("081Y");
    expect(validPatientAge("81", "19300105", "20110601").note).toMatch(/repaired to "081Y"/);
    expect(validPatientAge("5", "20060101", "20110601").age).toBe("005Y");
  });
  it("leaves a bare number out when the unit cannot be confirmed (no dates, or dates disagree)", () => {
    expect(validPatientAge("81", undefined, undefined)).toEqual({ note: expect.stringMatching(/left out.*unit cannot be confirmed/) });
    expect(validPatientAge("81", "19300105", "20110104").age).toBeUndefined(); // 80 years and 364 days
    expect(validPatientAge("81", "1930", "20110601").age).toBeUndefined();
  });
  it("leaves out other invalid values", () => {
    expect(validPatientAge("81 years", "19300105", "20110601").age).toBeUndefined();
    expect(validPatientAge("0081Y", undefined, undefined).age).toBeUndefined();
    expect(validPatientAge("", undefined, undefined)).toEqual({});
  });
});

describe("copyPatientAndStudy", () => {
  it("fills missing Type 2 attributes empty, drops invalid values and says what it did", () => {
    const { attributes, notes } = copyPatientAndStudy(syntheticSource({
      StudyDate: "20111345", StudyTime: "250000", PatientSex: "MALE", StudyID: "THIS-ID-IS-TOO-LONG-FOR-SH",
      PatientWeight: "-3", StudyDescription: "Chest\\PA",
    }), "synthetic.dcm");
    expect(attributes).toMatchObject({
      PatientName: [{ Alphabetic: "Müller^Jürgen" }], PatientID: "P-1", PatientBirthDate: "", PatientSex: "",
      StudyDate: "", StudyTime: "", ReferringPhysicianName: [], StudyID: "", AccessionNumber: "",
    });
    expect(attributes).not.toHaveProperty("PatientAge");
    expect(attributes).not.toHaveProperty("PatientWeight");
    expect(attributes).not.toHaveProperty("StudyDescription");
    expect(notes.join("\n")).toMatch(/synthetic\.dcm: Study Date "20111345" is invalid; written empty/);
    expect(notes.join("\n")).toMatch(/Patient's Age "81" left out/);
    expect(notes.join("\n")).toMatch(/Patient's Weight "-3" is invalid; left out/);
  });

  it("copies valid values as they are", () => {
    const { attributes } = copyPatientAndStudy(syntheticSource({
      StudyDate: "20110601", StudyTime: "101530.25", PatientBirthDate: "19300105", AccessionNumber: "A123",
      ReferringPhysicianName: [{ Alphabetic: "House^Gregory" }], StudyDescription: "XR CHEST PA",
    }), "x");
    expect(attributes).toMatchObject({
      StudyDate: "20110601", StudyTime: "101530.25", PatientBirthDate: "19300105", AccessionNumber: "A123",
      PatientAge: "081Y", ReferringPhysicianName: [{ Alphabetic: "House^Gregory" }], StudyDescription: "XR CHEST PA",
    });
  });

  it("refuses a source without a valid Study Instance UID, naming the source", () => {
    expect(() => sourceReference(syntheticSource({ StudyInstanceUID: "1.2.03" }), "bad.dcm")).toThrow(/bad\.dcm: source StudyInstanceUID is invalid/);
    expect(() => sourceReference(syntheticSource({ SOPInstanceUID: undefined }), "bad.dcm")).toThrow(/SOPInstanceUID is missing/);
  });
});

describe("deriveResultUids", () => {
  it("gives the same UIDs for the same sources and model, in any order, and new ones for another model", () => {
    const a = deriveResultUids(["1.2.3", "1.2.4"], "2.25.1");
    const b = deriveResultUids(["1.2.4", "1.2.3"], "2.25.1");
    const c = deriveResultUids(["1.2.3", "1.2.4"], "2.25.2");
    expect(b.sopInstanceUidSr).toBe(a.sopInstanceUidSr);
    expect(b.sopInstanceUidsSc(2)).toBe(a.sopInstanceUidsSc(2));
    expect(c.sopInstanceUidSr).not.toBe(a.sopInstanceUidSr);
    const all = [a.seriesInstanceUidSr, a.seriesInstanceUidSc, a.sopInstanceUidSr, a.sopInstanceUidsSc(1), a.sopInstanceUidsSc(2)];
    expect(new Set(all).size).toBe(all.length);
    for (const uid of all) expect(uid).toMatch(/^2\.25\.[1-9]\d{0,38}$/);
  });
});
