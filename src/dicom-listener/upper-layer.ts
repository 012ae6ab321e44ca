/**
 * The DICOM upper layer's association PDUs (PS3.8 9.3.2-9.3.4, 9.3.6-9.3.8): the A-ASSOCIATE-RQ as
 * read from its bytes, and the A-ASSOCIATE-AC / -RJ, A-RELEASE-RP and A-ABORT this side sends.
 * Read and written here (not by dcmjs-dimse) so that every field the association rules check —
 * the protocol version and the application context name among them — is visible to them.
 */
import { PDU_TYPE } from "./pdu-reader.ts";

/** The DICOM Application Context Name (PS3.7 A.2.1): the only one there is. */
export const DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1";

export interface ProposedContext {
  id: number;
  abstractSyntaxUid: string;
  transferSyntaxUids: string[];
}

/** An A-ASSOCIATE-RQ as the association rules see it. */
export interface AssociateRequest {
  /** The protocol-version field (bit 0 = version 1, the only version PS3.8 defines). */
  protocolVersion: number;
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName: string;
  contexts: ProposedContext[];
  /** The requestor's maximum P-DATA-TF variable field length (0 = unlimited). */
  maxPduLength: number;
  implementationClassUid: string;
}

/** A malformed A-ASSOCIATE-RQ (answered with an A-ABORT). */
export class AssociatePduError extends Error {}

const text = (b: Buffer) => b.toString("latin1").replace(/\0+$/, "").trim();

/** Items of a variable field: (type, value) pairs with 2-byte big-endian lengths (PS3.8 9.3.2.1). */
function* items(b: Buffer, what: string): Generator<{ type: number; value: Buffer }> {
  for (let at = 0; at < b.length; ) {
    if (at + 4 > b.length) throw new AssociatePduError(`${what}: truncated item header at byte ${at}`);
    const type = b[at]!;
    const length = b.readUInt16BE(at + 2);
    if (at + 4 + length > b.length) throw new AssociatePduError(`${what}: item 0x${type.toString(16)} of ${length} bytes overruns its field`);
    yield { type, value: b.subarray(at + 4, at + 4 + length) };
    at += 4 + length;
  }
}

/** Reads an A-ASSOCIATE-RQ PDU (`pdu` with its 6-byte header). */
export function parseAssociateRq(pdu: Buffer): AssociateRequest {
  if (pdu.length < 6 + 68) throw new AssociatePduError(`A-ASSOCIATE-RQ of ${pdu.length} bytes is shorter than its fixed fields`);
  const body = pdu.subarray(6);
  const rq: AssociateRequest = {
    protocolVersion: body.readUInt16BE(0),
    calledAeTitle: text(body.subarray(4, 20)),
    callingAeTitle: text(body.subarray(20, 36)),
    applicationContextName: "",
    contexts: [],
    maxPduLength: 0,
    implementationClassUid: "",
  };
  for (const item of items(body.subarray(68), "A-ASSOCIATE-RQ")) {
    if (item.type === 0x10) rq.applicationContextName = text(item.value);
    else if (item.type === 0x20) rq.contexts.push(parseProposedContext(item.value));
    else if (item.type === 0x50) {
      for (const sub of items(item.value, "user information")) {
        if (sub.type === 0x51) {
          if (sub.value.length !== 4) throw new AssociatePduError("maximum length sub-item is not 4 bytes");
          rq.maxPduLength = sub.value.readUInt32BE(0);
        } else if (sub.type === 0x52) rq.implementationClassUid = text(sub.value);
      }
    }
  }
  return rq;
}

function parseProposedContext(b: Buffer): ProposedContext {
  if (b.length < 4) throw new AssociatePduError("presentation context item shorter than 4 bytes");
  const context: ProposedContext = { id: b[0]!, abstractSyntaxUid: "", transferSyntaxUids: [] };
  for (const sub of items(b.subarray(4), `presentation context ${context.id}`)) {
    if (sub.type === 0x30) context.abstractSyntaxUid = text(sub.value);
    else if (sub.type === 0x40) context.transferSyntaxUids.push(text(sub.value));
  }
  return context;
}

/** Presentation context results (PS3.8 9.3.3.2). */
export const CONTEXT_RESULT = { acceptance: 0, userRejection: 1, noReason: 2, abstractSyntaxNotSupported: 3, transferSyntaxesNotSupported: 4 } as const;

export interface ContextResult {
  id: number;
  result: number;
  /** The accepted transfer syntax (for a rejected context PS3.8 leaves it unsignificant; one is sent anyway). */
  transferSyntaxUid?: string;
  /** The proposed abstract syntax (kept for the DIMSE checks; not part of the A-ASSOCIATE-AC). */
  abstractSyntaxUid: string;
}

function item(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** The A-ASSOCIATE-AC for `rq` with the contexts' results, announcing `maxPduLength` (0 = unlimited). */
export function encodeAssociateAc(
  rq: AssociateRequest,
  contexts: ContextResult[],
  opts: { maxPduLength: number; implementationClassUid: string; implementationVersionName: string },
): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0);
  // PS3.8 9.3.3: the AE titles are returned as received (not tested by the requestor).
  fixed.write(rq.calledAeTitle.padEnd(16), 4, 16, "latin1");
  fixed.write(rq.callingAeTitle.padEnd(16), 20, 16, "latin1");
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(opts.maxPduLength);
  return pdu(
    PDU_TYPE.associateAc,
    Buffer.concat([
      fixed,
      item(0x10, Buffer.from(DICOM_APPLICATION_CONTEXT, "latin1")),
      ...contexts.map((c) => item(0x21, Buffer.concat([Buffer.from([c.id, 0, c.result, 0]), item(0x40, Buffer.from(c.transferSyntaxUid ?? "1.2.840.10008.1.2", "latin1"))]))),
      item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, Buffer.from(opts.implementationClassUid, "latin1")), item(0x55, Buffer.from(opts.implementationVersionName.slice(0, 16), "latin1"))])),
    ]),
  );
}

/** A-ASSOCIATE-RJ results, sources and reasons (PS3.8 9.3.4). */
export const REJECT = {
  result: { permanent: 1, transient: 2 },
  /** source 1: service user */
  user: { source: 1, noReason: 1, applicationContextNameNotSupported: 2, callingAeNotRecognized: 3, calledAeNotRecognized: 7 },
  /** source 2: service provider (ACSE related function) */
  acse: { source: 2, noReason: 1, protocolVersionNotSupported: 2 },
  /** source 3: service provider (presentation related function) */
  presentation: { source: 3, temporaryCongestion: 1, localLimitExceeded: 2 },
} as const;

export function encodeAssociateRj(result: number, source: number, reason: number): Buffer {
  return pdu(PDU_TYPE.associateRj, Buffer.from([0, result, source, reason]));
}

export const RELEASE_RP = pdu(PDU_TYPE.releaseRp, Buffer.alloc(4));
