import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readDicom } from "../../src/dicom/read.ts";
import { IMPLEMENTATION_CLASS_UID, toPart10Buffer, writePart10 } from "../../src/dicom/write.ts";
import { tempDir } from "../helpers/tmp.ts";

const tmp = tempDir("cxr-write-");
afterAll(() => tmp.cleanup());

const minimal = (extra: Record<string, unknown> = {}) => ({
  SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.34",
  SOPInstanceUID: "2.25.42",
  PatientID: "P1",
  ...extra,
});

describe("toPart10Buffer / writePart10", () => {
  it("writes preamble, DICM, a group 0002 whose length matches, and the dataset in Explicit VR Little Endian", () => {
    const bytes = toPart10Buffer(minimal());
    expect(bytes.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(128, 132).toString("latin1")).toBe("DICM");
    // (0002,0000) UL: tag(4) VR(2) length(2) value(4); the value counts the meta bytes that follow it
    expect(bytes.readUInt16LE(132)).toBe(0x0002);
    expect(bytes.readUInt16LE(134)).toBe(0x0000);
    expect(bytes.subarray(136, 138).toString("latin1")).toBe("UL");
    const groupLength = bytes.readUInt32LE(140);
    const afterMeta = 144 + groupLength;
    expect(bytes.readUInt16LE(afterMeta)).toBe(0x0008); // first dataset element is group 0008
    expect(bytes.readUInt16LE(afterMeta - 0)).not.toBe(0x0002);
    // the last meta element ends exactly at the declared length
    let offset = 144;
    while (offset < afterMeta) {
      expect(bytes.readUInt16LE(offset)).toBe(0x0002);
      const vr = bytes.subarray(offset + 4, offset + 6).toString("latin1");
      offset += ["OB", "OW", "SQ", "UN", "UT"].includes(vr) ? 12 + bytes.readUInt32LE(offset + 8) : 8 + bytes.readUInt16LE(offset + 6);
    }
    expect(offset).toBe(afterMeta);
  });

  it("round-trips through the project's reader and dcmdump", () => {
    const path = join(tmp.dir, "min.dcm");
    writePart10(minimal({ PatientName: [{ Alphabetic: "Doe^Jane" }], StudyDate: "" }), path);
    const file = readDicom(path);
    expect(file.transferSyntaxUid).toBe("1.2.840.10008.1.2.1");
    expect(file.meta.MediaStorageSOPInstanceUID).toBe("2.25.42");
    expect(file.meta.MediaStorageSOPClassUID).toBe("1.2.840.10008.5.1.4.1.1.88.34");
    expect(file.meta.ImplementationClassUID).toBe(IMPLEMENTATION_CLASS_UID);
    expect(file.dataset.PatientID).toBe("P1");
    const dump = spawnSync("dcmdump", ["-q", path], { encoding: "utf8" });
    expect(dump.status, dump.stderr).toBe(0);
    expect(dump.stdout).toContain("(0002,0010) UI =LittleEndianExplicit");
    expect(dump.stdout).toMatch(/\(0008,0020\) DA \(no value available\)/);
  });

  it("declares ISO_IR 192 exactly when some text is not ASCII, whatever the dataset claimed", () => {
    const plain = join(tmp.dir, "ascii.dcm");
    writePart10(minimal({ SpecificCharacterSet: "ISO_IR 100", PatientName: [{ Alphabetic: "Doe^Jane" }] }), plain);
    expect(readDicom(plain).dict["00080005"]).toBeUndefined();
    const utf8 = join(tmp.dir, "utf8.dcm");
    writePart10(minimal({ ContentSequence: [{ ValueType: "TEXT", TextValue: "Müller" }] }), utf8);
    expect(readDicom(utf8).dict["00080005"]?.Value).toEqual(["ISO_IR 192"]);
    // the nested text is UTF-8 on disk (dcmdump decodes it with the declared ISO_IR 192)
    const dump = spawnSync("dcmdump", ["-q", utf8], { encoding: "utf8" });
    expect(dump.stdout).toMatch(/\(0040,a160\) UT \[Müller\]/);
  });

  it("refuses a dataset without SOP Class or Instance UID, naming what is missing", () => {
    expect(() => toPart10Buffer({ SOPInstanceUID: "2.25.1" })).toThrow(/instance 2\.25\.1: SOPClassUID is missing/);
    expect(() => toPart10Buffer({ SOPClassUID: "1.2.3" })).toThrow(/SOPInstanceUID is missing/);
  });

  it("never leaves a partial file: a failed write throws and the target does not appear", () => {
    const target = join(tmp.dir, "no-such-dir", "x.dcm");
    expect(() => writePart10(minimal(), target)).toThrow(/cannot write DICOM file .*no-such-dir/);
  });
});
