import { describe, expect, it } from "vitest";
import { COMMAND_FIELD, parseCommandSet } from "../../src/dicom-listener/command-set.ts";
import { element as el, ui, us } from "./dimse-bytes.ts";

function storeRq(dataSetType: number, extra: Buffer[] = []): Buffer {
  const body = Buffer.concat([
    el(0x0002, ui("1.2.840.10008.5.1.4.1.1.1.1")),
    el(0x0100, us(COMMAND_FIELD.cStoreRq)),
    el(0x0110, us(0x2a)),
    el(0x0700, us(0)), // Priority: read past, not kept
    el(0x0800, us(dataSetType)),
    el(0x1000, ui("1.2.3.4.5")), // odd length: NUL-padded
    ...extra,
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length);
  return Buffer.concat([el(0x0000, length), body]);
}

describe("DIMSE command set (C-STORE-RQ read without dcmjs-dimse)", () => {
  it("reads the command field, message ID, affected SOP class and instance (padding removed) and whether a data set follows", () => {
    expect(parseCommandSet(storeRq(0x0000))).toEqual({
      commandField: COMMAND_FIELD.cStoreRq,
      messageId: 0x2a,
      affectedSopClassUid: "1.2.840.10008.5.1.4.1.1.1.1",
      affectedSopInstanceUid: "1.2.3.4.5",
      hasDataSet: true,
    });
    // 0101H: no data set (a C-ECHO-RQ, or a malformed C-STORE-RQ the listener then refuses)
    expect(parseCommandSet(storeRq(0x0101)).hasDataSet).toBe(false);
    // Move Originator fields and the like are read past.
    expect(parseCommandSet(storeRq(0x0102, [el(0x1030, Buffer.from("MOVE_SCU  "))])).affectedSopInstanceUid).toBe("1.2.3.4.5");
  });

  it("refuses a command set that is truncated, overruns itself, leaves group 0000 or has a US of the wrong size", () => {
    const ok = storeRq(0x0000);
    expect(() => parseCommandSet(ok.subarray(0, ok.length - 3))).toThrow(/overruns the/);
    expect(() => parseCommandSet(Buffer.concat([ok, Buffer.from([0, 0, 0])]))).toThrow(/truncated element header/);
    expect(() => parseCommandSet(Buffer.concat([ok, el(0x0010, Buffer.from("AB"), 0x0008)]))).toThrow(/\(0008,0010\) outside group 0000/);
    expect(() => parseCommandSet(el(0x0100, Buffer.from([1, 0, 0, 0])))).toThrow(/\(0000,0100\) is US but has 4 bytes/);
  });
});
