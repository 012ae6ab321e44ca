/**
 * How far a received data set's header reaches, and what it would cost to parse: walks the data
 * set's elements (sequences and items included, at any depth) up to the top-level (7FE0,0010)
 * Pixel Data, counting elements and nesting levels against the parse budget, and stops as soon as
 * a budget is exceeded. Iterative (an explicit stack, never recursion) and never more than
 * `maxElements` steps, so its cost is bounded whatever the peer sent; only a header that passes
 * goes on to the full parse (header-parser.ts, off the main thread). Little Endian (implicit or
 * explicit VR) and Explicit VR Big Endian; deflated data sets cannot be walked without inflating.
 */
import type { ParseBudget } from "../config/service.ts";

export interface DatasetEncoding {
  explicitVr: boolean;
  littleEndian: boolean;
}

/** The encoding of a transfer syntax's data set, or undefined when it cannot be walked as it arrives (deflate). */
export function datasetEncoding(transferSyntaxUid: string): DatasetEncoding | undefined {
  if (transferSyntaxUid === "1.2.840.10008.1.2.1.99") return undefined;
  if (transferSyntaxUid === "1.2.840.10008.1.2") return { explicitVr: false, littleEndian: true };
  return { explicitVr: true, littleEndian: transferSyntaxUid !== "1.2.840.10008.1.2.2" };
}

export type HeaderExtent =
  /** The header is bytes [0, end): up to the top-level Pixel Data, or the whole (complete) data set without one. */
  | { kind: "header"; end: number; elements: number; depth: number }
  /** More bytes are needed to find the header's end. */
  | { kind: "incomplete" }
  /** The header is over a budget (the instance is refused): which, and where. */
  | { kind: "overBudget"; reason: string }
  /** The bytes cannot be walked as a data set (the full parse gives the definitive error). */
  | { kind: "malformed"; reason: string };

const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"]);
const UNDEFINED = 0xffffffff;

interface Frame {
  /** "elements": a data set or item's elements; "items": a sequence's items; "fragments": encapsulated pixel data's items (skipped). */
  kind: "elements" | "items" | "fragments";
  /** Where the frame ends (Infinity: undefined length, ends at its delimiter). */
  end: number;
  explicitVr: boolean;
}

class Malformed extends Error {}

/**
 * `complete`: `bytes` is the whole data set (its last fragment has arrived), so a top level that
 * ends without Pixel Data makes the whole data set the header.
 */
export function measureHeader(bytes: Buffer, encoding: DatasetEncoding, budget: Pick<ParseBudget, "maxNestingDepth" | "maxElements" | "maxHeaderBytes">, complete: boolean): HeaderExtent {
  const le = encoding.littleEndian;
  const u16 = (at: number) => (le ? bytes.readUInt16LE(at) : bytes.readUInt16BE(at));
  const u32 = (at: number) => (le ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));
  const limit = Math.min(bytes.length, budget.maxHeaderBytes);
  const stack: Frame[] = [{ kind: "elements", end: Infinity, explicitVr: encoding.explicitVr }];
  let elements = 0;
  let deepest = 0;
  let pos = 0;
  const overHeaderBytes = () => ({ kind: "overBudget" as const, reason: `header longer than ${budget.maxHeaderBytes} bytes (maxHeaderBytes)` });
  const needMore = () => (bytes.length >= budget.maxHeaderBytes ? overHeaderBytes() : complete ? ({ kind: "malformed", reason: `data set ends inside an element at byte ${pos}` } as const) : ({ kind: "incomplete" } as const));
  try {
    for (;;) {
      const frame = stack[stack.length - 1]!;
      if (pos === frame.end) {
        stack.pop();
        continue;
      }
      if (pos > frame.end) throw new Malformed(`an element overruns its sequence or item at byte ${pos}`);
      if (stack.length === 1 && pos === bytes.length && complete) return { kind: "header", end: pos, elements, depth: deepest };
      if (pos + 8 > limit) return needMore();
      const group = u16(pos);
      const element = u16(pos + 2);
      if (++elements > budget.maxElements) return { kind: "overBudget", reason: `more than ${budget.maxElements} elements in the header (maxElements), at byte ${pos}` };
      if (frame.kind !== "elements") {
        // Item tags and their lengths are always implicit (PS3.5 7.5).
        const length = u32(pos + 4);
        if (group !== 0xfffe) throw new Malformed(`expected an item at byte ${pos}`);
        if (element === 0xe0dd) {
          if (frame.end !== Infinity) throw new Malformed(`sequence delimiter in a sequence of defined length at byte ${pos}`);
          stack.pop();
          pos += 8;
          continue;
        }
        if (element !== 0xe000) throw new Malformed(`expected an item at byte ${pos}`);
        if (frame.kind === "fragments") {
          if (length === UNDEFINED) throw new Malformed(`pixel data fragment of undefined length at byte ${pos}`);
          pos += 8 + length;
          if (pos > limit) return needMore();
          continue;
        }
        stack.push({ kind: "elements", end: length === UNDEFINED ? Infinity : pos + 8 + length, explicitVr: frame.explicitVr });
        pos += 8;
        continue;
      }
      if (group === 0xfffe) {
        if (element !== 0xe00d || stack.length === 1 || frame.end !== Infinity) throw new Malformed(`unexpected (FFFE,${element.toString(16).toUpperCase()}) at byte ${pos}`);
        stack.pop(); // item delimitation: back to the sequence's items
        pos += 8;
        continue;
      }
      if (stack.length === 1 && group === 0x7fe0 && element === 0x0010) return { kind: "header", end: pos, elements, depth: deepest };
      let length: number;
      let valueAt: number;
      let vr = "";
      if (frame.explicitVr) {
        vr = bytes.toString("latin1", pos + 4, pos + 6);
        if (!/^[A-Z]{2}$/.test(vr)) throw new Malformed(`not an explicit VR at byte ${pos}`);
        if (LONG_VRS.has(vr)) {
          if (pos + 12 > limit) return needMore();
          length = u32(pos + 8);
          valueAt = pos + 12;
        } else {
          length = u16(pos + 6);
          valueAt = pos + 8;
        }
      } else {
        length = u32(pos + 4);
        valueAt = pos + 8;
      }
      // A sequence: SQ, any undefined length (in implicit VR only a sequence has one; UN of undefined
      // length holds an implicit VR sequence, PS3.5 6.2.2), or an implicit VR value that starts with an item tag.
      const undefinedLength = length === UNDEFINED;
      if (undefinedLength && (vr === "OB" || vr === "OW")) {
        // Encapsulated pixel data (an icon image's, in an item): fragments, not nested data sets.
        stack.push({ kind: "fragments", end: Infinity, explicitVr: frame.explicitVr });
        pos = valueAt;
        continue;
      }
      const sequence = vr === "SQ" || undefinedLength || (!frame.explicitVr && length >= 8 && valueAt + 4 <= limit && u16(valueAt) === 0xfffe && u16(valueAt + 2) === 0xe000);
      if (sequence) {
        const depth = stack.filter((f) => f.kind === "items").length + 1;
        if (depth > budget.maxNestingDepth) return { kind: "overBudget", reason: `sequences nested deeper than ${budget.maxNestingDepth} levels (maxNestingDepth), at byte ${pos}` };
        deepest = Math.max(deepest, depth);
        stack.push({ kind: "items", end: undefinedLength ? Infinity : valueAt + length, explicitVr: frame.explicitVr && vr !== "UN" });
        pos = valueAt;
        continue;
      }
      pos = valueAt + length;
      if (pos > limit) return needMore();
    }
  } catch (err) {
    if (err instanceof Malformed) return { kind: "malformed", reason: err.message };
    throw err;
  }
}
