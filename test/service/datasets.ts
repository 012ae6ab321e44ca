/** Data set bytes for the listener's parse-budget tests (PS3.5 7.1, 7.5), Explicit or Implicit VR Little Endian. */

export interface Encoding {
  explicit: boolean;
}
const SHORT_VRS = new Set(["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"]);
const UNDEFINED = 0xffffffff;

/** One element with a defined length (`length` overrides the value's, e.g. for a sequence's header alone). */
export function dataElement(enc: Encoding, group: number, element: number, vr: string, value: Buffer, length = value.length): Buffer {
  const short = enc.explicit && SHORT_VRS.has(vr);
  const head = Buffer.alloc(enc.explicit ? (short ? 8 : 12) : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(element, 2);
  if (!enc.explicit) head.writeUInt32LE(length, 4);
  else if (short) {
    head.write(vr, 4, "latin1");
    head.writeUInt16LE(length, 6);
  } else {
    head.write(vr, 4, "latin1");
    head.writeUInt32LE(length, 8);
  }
  return Buffer.concat([head, value]);
}
const tag = (group: number, element: number, length: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(group, 0);
  b.writeUInt16LE(element, 2);
  b.writeUInt32LE(length, 4);
  return b;
};
const uiValue = (uid: string) => Buffer.from(uid.length % 2 ? `${uid}\0` : uid, "latin1");

export interface Identity {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
}

/** The identifying elements, then `middle`, then a small Pixel Data (tags in ascending order when `middle` keeps to (0040,xxxx)..(7FDF,xxxx)). */
export function dataset(enc: Encoding, id: Identity, middle: Buffer[] = []): Buffer {
  return Buffer.concat([
    dataElement(enc, 0x0008, 0x0016, "UI", uiValue(id.sopClassUid)),
    dataElement(enc, 0x0008, 0x0018, "UI", uiValue(id.sopInstanceUid)),
    dataElement(enc, 0x0008, 0x0060, "CS", Buffer.from("CR")),
    dataElement(enc, 0x0020, 0x000d, "UI", uiValue(id.studyInstanceUid)),
    dataElement(enc, 0x0020, 0x000e, "UI", uiValue(id.seriesInstanceUid)),
    ...middle,
    dataElement(enc, 0x7fe0, 0x0010, "OW", Buffer.alloc(16)),
  ]);
}

/** (0040,A730) Content Sequence nested `levels` deep, every sequence and item of undefined length. */
export function nestedSequences(enc: Encoding, levels: number): Buffer {
  const open = Buffer.concat([dataElement(enc, 0x0040, 0xa730, "SQ", Buffer.alloc(0), UNDEFINED), tag(0xfffe, 0xe000, UNDEFINED)]);
  const close = Buffer.concat([tag(0xfffe, 0xe00d, 0), tag(0xfffe, 0xe0dd, 0)]);
  const out = Buffer.alloc(levels * (open.length + close.length));
  for (let i = 0; i < levels; i++) {
    open.copy(out, i * open.length);
    close.copy(out, levels * open.length + i * close.length);
  }
  return out;
}

/** The same nesting with defined lengths throughout (no delimiters to see it by). */
export function nestedSequencesDefined(enc: Encoding, levels: number): Buffer {
  let inner: Buffer = Buffer.alloc(0);
  for (let i = 0; i < levels; i++) {
    const item = Buffer.concat([tag(0xfffe, 0xe000, inner.length), inner]);
    inner = dataElement(enc, 0x0040, 0xa730, "SQ", item);
  }
  return inner;
}

/** `n` small elements in a private group (so that the element count, not their size, is large). */
export function manyElements(enc: Encoding, n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) parts.push(dataElement(enc, 0x0041, 0x1000 + (i % 0xefff), "LO", Buffer.from("ab")));
  return Buffer.concat(parts);
}

/** Part 10 framing for a data set (preamble, "DICM", File Meta Information), to make a file of it. */
export function part10File(ds: Buffer, id: Identity, transferSyntaxUid: string): Buffer {
  const meta = Buffer.concat([
    dataElement({ explicit: true }, 0x0002, 0x0001, "OB", Buffer.from([0, 1])),
    dataElement({ explicit: true }, 0x0002, 0x0002, "UI", uiValue(id.sopClassUid)),
    dataElement({ explicit: true }, 0x0002, 0x0003, "UI", uiValue(id.sopInstanceUid)),
    dataElement({ explicit: true }, 0x0002, 0x0010, "UI", uiValue(transferSyntaxUid)),
    dataElement({ explicit: true }, 0x0002, 0x0012, "UI", uiValue("1.2.3.4")),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(meta.length);
  const lead = Buffer.alloc(132);
  lead.write("DICM", 128, "latin1");
  return Buffer.concat([lead, dataElement({ explicit: true }, 0x0002, 0x0000, "UL", length), meta, ds]);
}
