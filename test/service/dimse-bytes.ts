/** Raw DICOM upper-layer and DIMSE bytes for the listener's tests (PS3.8 9.3, PS3.7 6.3.1). */

/** A PDU: type, reserved byte, 4-byte big-endian length, body. */
export function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** A presentation data value item: length, context ID, message control header (bit 0 command, bit 1 last), value. */
export function pdv(pcId: number, control: number, value: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(value.length + 2, 0);
  head[4] = pcId;
  head[5] = control;
  return Buffer.concat([head, value]);
}

/** A P-DATA-TF with one PDV. */
export const pData = (pcId: number, control: number, value: Buffer) => pdu(0x04, pdv(pcId, control, value));

/** One Implicit VR Little Endian element (command sets are always encoded so). */
export function element(elementNumber: number, value: Buffer, group = 0x0000): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elementNumber, 2);
  head.writeUInt32LE(value.length, 4);
  return Buffer.concat([head, value]);
}
export const us = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
/** A UI value, NUL-padded to an even length. */
export const ui = (uid: string) => Buffer.from(uid.length % 2 ? `${uid}\0` : uid, "latin1");

/** A raw A-ASSOCIATE-RQ proposing one context (ID 1): `abstract` in Explicit VR Little Endian. */
export function associateRq(called: string, calling: string, abstract: string, opts: { protocolVersion?: number; applicationContext?: string } = {}): Buffer {
  const item = (type: number, body: Buffer) => {
    const h = Buffer.alloc(4);
    h[0] = type;
    h.writeUInt16BE(body.length, 2);
    return Buffer.concat([h, body]);
  };
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(16384);
  const head = Buffer.alloc(68);
  head.writeUInt16BE(opts.protocolVersion ?? 1, 0); // protocol version
  head.write(called.padEnd(16), 4, "latin1");
  head.write(calling.padEnd(16), 20, "latin1");
  return pdu(
    0x01,
    Buffer.concat([
      head,
      item(0x10, Buffer.from(opts.applicationContext ?? "1.2.840.10008.3.1.1.1")),
      item(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0]), item(0x30, Buffer.from(abstract)), item(0x40, Buffer.from("1.2.840.10008.1.2.1"))])),
      item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, Buffer.from("1.2.3.4"))])),
    ]),
  );
}
