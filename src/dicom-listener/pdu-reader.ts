/**
 * Splits the inbound byte stream of an association into PDUs (PS3.8 9.3), replacing dcmjs-dimse's
 * accumulator, which re-concatenates everything received so far on every socket read
 * (`Buffer.concat([receiving, chunk])`): O(n²) copies per PDU, about 16 × 128 KiB copied per
 * 256 KiB P-DATA-TF PDU with 64 KiB socket reads, plus two more whole copies while dcmjs-dimse parses
 * the PDU and its PDVs. Here the socket chunks are kept as received, a PDU that lies in one chunk is a
 * view of it, one that spans several is joined once, and the PDV values of a P-DATA-TF are views of
 * that buffer — so a dataset fragment reaches the spool file stream with at most one copy.
 */

export const PDU_TYPE = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pDataTf: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07,
} as const;
const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(PDU_TYPE));

/** One presentation data value item (PS3.8 9.3.5.1), with the accessors dcmjs-dimse's own Pdv has. */
export class PresentationDataValue {
  constructor(
    private readonly pcId: number,
    private readonly value: Buffer,
    private readonly command: boolean,
    private readonly last: boolean,
  ) {}
  getPresentationContextId(): number {
    return this.pcId;
  }
  getValue(): Buffer {
    return this.value;
  }
  isCommand(): boolean {
    return this.command;
  }
  isLastFragment(): boolean {
    return this.last;
  }
}

/** The PDV items of a P-DATA-TF PDU (`pdu` is the whole PDU, 6-byte header included); values are views of `pdu`. */
export function splitPDataTf(pdu: Buffer): PresentationDataValue[] {
  const pdvs: PresentationDataValue[] = [];
  let at = 6;
  while (at < pdu.length) {
    if (at + 6 > pdu.length) throw new Error(`P-DATA-TF: truncated PDV item header at byte ${at} of ${pdu.length}`);
    const itemLength = pdu.readUInt32BE(at);
    if (itemLength < 2 || at + 4 + itemLength > pdu.length) throw new Error(`P-DATA-TF: PDV item length ${itemLength} at byte ${at} exceeds the PDU (${pdu.length} bytes)`);
    const pcId = pdu[at + 4]!;
    const control = pdu[at + 5]!;
    pdvs.push(new PresentationDataValue(pcId, pdu.subarray(at + 6, at + 4 + itemLength), (control & 1) !== 0, (control & 2) !== 0));
    at += 4 + itemLength;
  }
  return pdvs;
}

/**
 * The largest PDU the reader buffers depends on its type. A P-DATA-TF may not be longer than the
 * maximum length this side announced (PS3.8 D.1: it bounds the PDU's variable field); every other
 * PDU is small (an A-ASSOCIATE-RQ with 128 presentation contexts of 10 syntaxes each is under
 * 100 KiB). Without a bound a peer's length field alone (up to 4 GiB) decides how much memory the
 * listener holds for it.
 */
export interface PduLimits {
  /** The variable field length this side announced in its A-ASSOCIATE-AC (0 = no limit announced). */
  maxPDataLength: number;
}
/** P-DATA-TF bound when the configuration announces no limit (0, "unlimited" in PS3.8). */
export const UNANNOUNCED_PDATA_LIMIT = 64 * 1024 * 1024;
/** Bound for every PDU type other than P-DATA-TF. */
export const OTHER_PDU_LIMIT = 1024 * 1024;

/** The largest variable field length accepted for a PDU of `type`. */
export function pduLengthLimit(type: number, limits: PduLimits): number {
  if (type !== PDU_TYPE.pDataTf) return OTHER_PDU_LIMIT;
  // Some senders count the PDU header in the maximum: tolerated (6 bytes); anything more is refused.
  return (limits.maxPDataLength > 0 ? limits.maxPDataLength : UNANNOUNCED_PDATA_LIMIT) + 6;
}

/** A-ABORT reasons of the service provider (PS3.8 9.3.8, source 2). */
export const ABORT_REASON = { notSpecified: 0, unrecognizedPdu: 1, unexpectedPdu: 2, invalidPduParameterValue: 6 } as const;

/** An A-ABORT PDU from the service provider (source 2) with `reason`. */
export function abortPdu(reason: number): Buffer {
  return Buffer.from([PDU_TYPE.abort, 0, 0, 0, 0, 4, 0, 0, 2, reason]);
}

/** A PDU whose length field exceeds its limit (the listener answers it with an A-ABORT). */
export class PduTooLongError extends Error {}

/**
 * Cuts a byte stream into whole PDUs; `onPdu` gets each (type, bytes with header), `onError` an
 * unknown PDU type or a length field over the limit (reported as soon as the PDU's header is in,
 * before any of its body is buffered).
 */
export class PduReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;
  /** Type and total length of the PDU whose header has been read and whose bytes are still arriving. */
  private pendingType = 0;
  private pendingLength: number | undefined;

  constructor(
    private readonly onPdu: (type: number, pdu: Buffer) => void,
    private readonly onError: (err: Error) => void,
    private readonly limits: PduLimits = { maxPDataLength: 0 },
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 6) {
      if (this.pendingLength === undefined) {
        const head = this.peek6();
        const type = head[0]!;
        if (!KNOWN_TYPES.has(type)) {
          this.failed = true;
          this.onError(new Error(`Unknown PDU type: ${type}`));
          return;
        }
        const length = head.readUInt32BE(2);
        const limit = pduLengthLimit(type, this.limits);
        if (length > limit) {
          this.failed = true;
          this.onError(new PduTooLongError(`PDU of type 0x0${type.toString(16)} declares ${length} bytes, more than the ${limit} this listener accepts`));
          return;
        }
        this.pendingType = type;
        this.pendingLength = 6 + length;
      }
      if (this.buffered < this.pendingLength) return;
      const bytes = this.take(this.pendingLength);
      this.pendingLength = undefined;
      this.onPdu(this.pendingType, bytes);
    }
  }

  /** The PDU header (first 6 buffered bytes), without consuming it. */
  private peek6(): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= 6) return first;
    const out = Buffer.allocUnsafe(6);
    let filled = 0;
    for (const c of this.chunks) {
      filled += c.copy(out, filled, 0, Math.min(c.length, 6 - filled));
      if (filled === 6) break;
    }
    return out;
  }

  /** Consumes the first n buffered bytes: a view of the first chunk when it holds them, else one join. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    this.buffered -= n;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const want = n - filled;
      if (c.length <= want) {
        c.copy(out, filled);
        filled += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, filled, 0, want);
        this.chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}
