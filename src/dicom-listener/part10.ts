import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from "../dicom/write.ts";

/**
 * The 128-byte preamble, "DICM" and the File Meta Information (PS3.10 7.1) of a received instance,
 * so that the network dataset bytes that follow it on disk form a Part 10 file unchanged (the
 * dataset is stored exactly as sent, in the accepted transfer syntax).
 */
export function part10Header(opts: { sopClassUid: string; sopInstanceUid: string; transferSyntaxUid: string; sourceAeTitle: string }): Buffer {
  const elements = [
    element(0x0001, "OB", Buffer.from([0x00, 0x01])),
    element(0x0002, "UI", uidValue(opts.sopClassUid)),
    element(0x0003, "UI", uidValue(opts.sopInstanceUid)),
    element(0x0010, "UI", uidValue(opts.transferSyntaxUid)),
    element(0x0012, "UI", uidValue(IMPLEMENTATION_CLASS_UID)),
    element(0x0013, "SH", textValue(IMPLEMENTATION_VERSION_NAME)),
    element(0x0016, "AE", textValue(opts.sourceAeTitle.trim())),
  ];
  const body = Buffer.concat(elements);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.write("UL", 4, "latin1");
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(body.length, 8);
  const lead = Buffer.alloc(132);
  lead.write("DICM", 128, "latin1");
  return Buffer.concat([lead, groupLength, body]);
}

function uidValue(uid: string): Buffer {
  const s = uid.replace(/\0/g, "").trim();
  return Buffer.from(s.length % 2 ? `${s}\0` : s, "latin1");
}

function textValue(text: string): Buffer {
  return Buffer.from(text.length % 2 ? `${text} ` : text, "latin1");
}

function element(elementNumber: number, vr: "OB" | "UI" | "SH" | "AE", value: Buffer): Buffer {
  const long = vr === "OB";
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(0x0002, 0);
  head.writeUInt16LE(elementNumber, 2);
  head.write(vr, 4, "latin1");
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/**
 * Where the data set starts in a spool file that part10Header began: after the preamble, "DICM",
 * the group length element and the meta elements it counts. `head` holds at least the file's first
 * 144 bytes.
 */
export function part10DatasetOffset(head: Buffer): number {
  if (head.length < 144 || head.toString("latin1", 128, 132) !== "DICM" || head.readUInt16LE(132) !== 0x0002 || head.readUInt16LE(134) !== 0x0000) {
    throw new Error("not a spool file: no Part 10 preamble with a File Meta Information Group Length");
  }
  return 132 + 12 + head.readUInt32LE(140);
}
