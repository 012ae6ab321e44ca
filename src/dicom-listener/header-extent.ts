/**
 * Where the top-level (7FE0,0010) Pixel Data element starts in a Little Endian dataset (explicit or
 * implicit VR), walking element by element (sequences of undefined length included), or undefined
 * when it is not within `bytes` or the bytes cannot be walked. Lets the listener parse a received
 * header from the first fragments it kept in memory instead of reading the whole file back.
 */
const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"]);
const UNDEFINED = 0xffffffff;

export function pixelDataOffset(bytes: Buffer, explicit: boolean): number | undefined {
  try {
    const end = walk(bytes, 0, bytes.length, explicit, true);
    return end.pixelAt;
  } catch {
    return undefined;
  }
}

interface WalkResult { next: number; pixelAt?: number }

function walk(b: Buffer, at: number, limit: number, explicit: boolean, topLevel: boolean): WalkResult {
  let pos = at;
  while (pos + 8 <= limit) {
    const group = b.readUInt16LE(pos);
    const element = b.readUInt16LE(pos + 2);
    if (topLevel && group === 0x7fe0 && element === 0x0010) return { next: pos, pixelAt: pos };
    if (group === 0xfffe) {
      // Item delimitation / sequence delimitation inside a sequence: the caller handles it.
      return { next: pos };
    }
    let length: number;
    let valueAt: number;
    let vr = "";
    if (explicit) {
      vr = b.toString("latin1", pos + 4, pos + 6);
      if (!/^[A-Z]{2}$/.test(vr)) throw new Error("not an explicit VR");
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > limit) throw new Error("truncated");
        length = b.readUInt32LE(pos + 8);
        valueAt = pos + 12;
      } else {
        length = b.readUInt16LE(pos + 6);
        valueAt = pos + 8;
      }
    } else {
      length = b.readUInt32LE(pos + 4);
      valueAt = pos + 8;
    }
    if (length === UNDEFINED) {
      // A sequence (or encapsulated data) of undefined length: walk its items to the delimiter.
      pos = skipUndefined(b, valueAt, limit, explicit && vr !== "UN");
      continue;
    }
    pos = valueAt + length;
    if (pos > limit) throw new Error("truncated");
  }
  throw new Error("truncated");
}

function skipUndefined(b: Buffer, at: number, limit: number, explicit: boolean): number {
  let pos = at;
  for (;;) {
    if (pos + 8 > limit) throw new Error("truncated");
    const group = b.readUInt16LE(pos);
    const element = b.readUInt16LE(pos + 2);
    const length = b.readUInt32LE(pos + 4);
    if (group !== 0xfffe) throw new Error("expected an item");
    if (element === 0xe0dd) return pos + 8; // sequence delimitation
    if (element !== 0xe000) throw new Error("expected an item");
    if (length === UNDEFINED) {
      const inner = walk(b, pos + 8, limit, explicit, false);
      // inner.next points at the item delimitation (FFFE,E00D)
      if (b.readUInt16LE(inner.next) !== 0xfffe || b.readUInt16LE(inner.next + 2) !== 0xe00d) throw new Error("expected an item delimiter");
      pos = inner.next + 8;
    } else {
      pos = pos + 8 + length;
    }
  }
}
