import { describe, expect, it } from "vitest";
import dimse from "dcmjs-dimse";
import { PduReader, PduTooLongError, splitPDataTf } from "../../src/dicom-listener/pdu-reader.ts";
import { encodeStoreResponsePdu } from "../../src/dicom-listener/store-response.ts";
import { pdu, pdv } from "./dimse-bytes.ts";

const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe("PDU reader (replaces dcmjs-dimse's accumulator)", () => {
  const stream = [
    pdu(0x01, bytes(300, 1)),
    pdu(0x04, Buffer.concat([pdv(1, 0x03, bytes(90, 2))])),
    pdu(0x04, Buffer.concat([pdv(1, 0x00, bytes(70_000, 3)), pdv(3, 0x02, bytes(5, 4))])),
    pdu(0x05, Buffer.alloc(4)),
  ];
  const whole = Buffer.concat(stream);

  it("yields the same PDUs, in order, whatever the socket chunk sizes", () => {
    for (const size of [3, 6, 7, 1000, 65_536, whole.length]) {
      const got: { type: number; pdu: Buffer }[] = [];
      const reader = new PduReader(
        (type, p) => got.push({ type, pdu: Buffer.from(p) }),
        (err) => {
          throw err;
        },
      );
      for (let at = 0; at < whole.length; at += size) reader.push(whole.subarray(at, at + size));
      expect(got.map((g) => g.type)).toEqual([0x01, 0x04, 0x04, 0x05]);
      got.forEach((g, i) => expect(g.pdu.equals(stream[i]!)).toBe(true));
    }
  });

  it("splits a P-DATA-TF into its PDVs (context, command and last-fragment bits, values)", () => {
    const pdvs = splitPDataTf(stream[2]!);
    expect(pdvs.map((p) => [p.getPresentationContextId(), p.isCommand(), p.isLastFragment(), p.getValue().length])).toEqual([
      [1, false, false, 70_000],
      [3, false, true, 5],
    ]);
    expect(pdvs[0]!.getValue().equals(bytes(70_000, 3))).toBe(true);
    expect(splitPDataTf(stream[1]!)[0]!.isCommand()).toBe(true);
  });

  it("reports an unknown PDU type and a PDV that overruns its PDU", () => {
    const errors: Error[] = [];
    new PduReader(
      () => undefined,
      (e) => errors.push(e),
    ).push(pdu(0x09, Buffer.alloc(2)));
    expect(errors[0]?.message).toMatch(/Unknown PDU type: 9/);
    const bad = pdu(0x04, pdv(1, 0x02, bytes(10, 5)));
    bad.writeUInt32BE(50, 6);
    expect(() => splitPDataTf(bad)).toThrow(/PDV item length 50/);
  });

  it("refuses a PDU whose length field is over its limit as soon as its header is in (nothing of it buffered)", () => {
    const run = (chunks: Buffer[], maxPDataLength: number) => {
      const got: number[] = [];
      const errors: Error[] = [];
      const reader = new PduReader(
        (type) => got.push(type),
        (e) => errors.push(e),
        { maxPDataLength },
      );
      for (const c of chunks) reader.push(c);
      return { got, errors };
    };
    // Exactly the announced maximum, and a sender counting the 6-byte header in it: accepted.
    for (const length of [16_384, 16_390]) {
      const r = run([pdu(0x04, pdv(1, 0x02, bytes(length - 6, 7)))], 16_384);
      expect(r.errors, String(length)).toEqual([]);
      expect(r.got).toEqual([0x04]);
    }
    // One byte more is refused from the header alone: the body never has to arrive.
    const header = (type: number, length: number) => {
      const h = Buffer.alloc(6);
      h[0] = type;
      h.writeUInt32BE(length, 2);
      return h;
    };
    const over = run([header(0x04, 16_391)], 16_384);
    expect(over.got).toEqual([]);
    expect(over.errors[0]).toBeInstanceOf(PduTooLongError);
    expect(over.errors[0]?.message).toMatch(/declares 16391 bytes, more than the 16390/);
    // A 4 GiB length field with no limit configured, and an A-ASSOCIATE-RQ over 1 MiB: refused too.
    expect(run([header(0x04, 0xffffffff)], 0).errors[0]?.message).toMatch(/more than the 67108870/);
    expect(run([header(0x01, 2 * 1024 * 1024)], 16_384).errors[0]).toBeInstanceOf(PduTooLongError);
    // Nothing after a refusal is parsed.
    const after = run([header(0x04, 16_391), pdu(0x05, Buffer.alloc(4))], 16_384);
    expect(after.got).toEqual([]);
    expect(after.errors).toHaveLength(1);
  });
});

describe("C-STORE-RSP encoded directly", () => {
  it("decodes (dcmjs-dimse's own command parser) to the status, comment and identifiers given", () => {
    const encoded = encodeStoreResponsePdu({
      presentationContextId: 5,
      messageIdBeingRespondedTo: 0x1234,
      affectedSopClassUid: "1.2.840.10008.5.1.4.1.1.1",
      affectedSopInstanceUid: "1.2.3.44",
      status: 0xa900,
      errorComment: "missing or invalid studyInstanceUid",
    });
    const [rsp] = splitPDataTf(encoded);
    expect(rsp!.getPresentationContextId()).toBe(5);
    expect(rsp!.isCommand() && rsp!.isLastFragment()).toBe(true);
    const ds = new dimse.Dataset(Buffer.from(rsp!.getValue()));
    const el = ds.getElements() as Record<string, unknown>;
    expect(el.CommandField).toBe(0x8001);
    expect(el.MessageIDBeingRespondedTo).toBe(0x1234);
    expect(el.Status).toBe(0xa900);
    expect(el.ErrorComment).toBe("missing or invalid studyInstanceUid");
    expect(el.AffectedSOPClassUID).toBe("1.2.840.10008.5.1.4.1.1.1");
    expect(el.AffectedSOPInstanceUID).toBe("1.2.3.44");
    expect(el.CommandDataSetType).toBe(0x0101);
    expect(el.CommandGroupLength).toBe(rsp!.getValue().length - 12);
  });
});
