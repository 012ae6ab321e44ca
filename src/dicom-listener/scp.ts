/**
 * The DICOM protocol adapter of one transport connection: the upper-layer state machine of the
 * association acceptor (PS3.8 9.2) and the DIMSE services it offers (C-ECHO, C-STORE). It decides
 * nothing about who may associate (an AssociationAcceptor does) and stores nothing (the
 * association's StoreHandler does); it owns the protocol's order and timers:
 * - ARTIM (PS3.8 9.1.5): a connection that sends no A-ASSOCIATE-RQ, or does not close after a
 *   reject, release or abort, is closed when it expires;
 * - an idle timeout on an established association, counted whether or not the peer sends anything
 *   (a C-STORE being made durable is not idleness);
 * - one association per connection: an A-ASSOCIATE-RQ on an established association, a release
 *   request before any association or any other PDU out of order is answered with an A-ABORT;
 * - DIMSE only on an accepted presentation context negotiated for its SOP class.
 */
import type { Socket } from "node:net";
import type { Logger } from "pino";
import { SOP_CLASS } from "../config/service.ts";
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from "../dicom/write.ts";
import type { AssociationDecision } from "./association-rules.ts";
import { COMMAND_FIELD, parseCommandSet } from "./command-set.ts";
import { ABORT_REASON, abortPdu, PDU_TYPE, PduReader, PduTooLongError, splitPDataTf, type PresentationDataValue } from "./pdu-reader.ts";
import { COMMAND_FIELD_C_ECHO_RSP, encodeStoreResponsePdu, STORE_STATUS, type StoreResult } from "./store-response.ts";
import { CONTEXT_RESULT, encodeAssociateAc, encodeAssociateRj, parseAssociateRq, RELEASE_RP, type AssociateRequest, type ContextResult } from "./upper-layer.ts";

/** A C-STORE-RQ as the adapter hands it on, with what the association negotiated for it. */
export interface StoreRequest {
  messageId: number;
  sopClassUid: string;
  sopInstanceUid: string;
  presentationContextId: number;
  transferSyntaxUid: string;
  callingAeTitle: string;
}

/** Where one C-STORE's data set goes. */
export interface StoreSink {
  append(fragment: Buffer): void;
  /** After the last fragment: the answer (Success only once the instance is durable and recorded). */
  finish(): Promise<StoreResult>;
  /** The association ended before the last fragment: nothing of it is kept. */
  abandon(): void;
}

/** What an accepted association stores through. */
export interface StoreHandler {
  beginStore(request: StoreRequest): StoreSink;
}

/** An accepted association's link to the service: its store handler and its end (its slot is free). */
export interface AssociationSession extends StoreHandler {
  /** Called once, when the association is released, aborted or cut off. */
  end(): void;
}

/** Decides on each A-ASSOCIATE-RQ (association-rules.ts) and, on acceptance, opens its session. */
export interface AssociationAcceptor {
  associate(rq: AssociateRequest, peerHost: string): { decision: AssociationDecision; session?: AssociationSession };
}

export interface ConnectionOptions {
  acceptor: AssociationAcceptor;
  logger: Logger;
  /** PS3.8 ARTIM timeout. */
  artimMs: number;
  /** An established association without traffic is aborted after this long. */
  idleMs: number;
  /** The maximum P-DATA-TF length this side announces (0 = unlimited, bounded by the PDU reader). */
  maxPduLength: number;
}

type State = "awaitingAssociateRq" | "associated" | "releasing" | "closing";

/** The peer's address, IPv4-mapped IPv6 written as plain IPv4 (as the allowed-hosts configuration lists it). */
export const peerAddress = (socket: Socket) => (socket.remoteAddress ?? "").replace(/^::ffff:/, "");

/** A PDU or DIMSE message that breaks the protocol: the association is aborted with `reason`. */
class ProtocolError extends Error {
  constructor(
    message: string,
    readonly reason: number = ABORT_REASON.invalidPduParameterValue,
  ) {
    super(message);
  }
}

export class DicomConnection {
  private state: State = "awaitingAssociateRq";
  private readonly peer: string;
  private session?: AssociationSession;
  private callingAeTitle = "";
  private contexts = new Map<number, ContextResult>();
  /** When the state's timer counts from (the last PDU or answer while associated). */
  private lastActivity = Date.now();
  private timer?: NodeJS.Timeout;
  /** P-DATA-TF PDUs are handled one after the other, in order. */
  private inOrder: Promise<void> = Promise.resolve();
  /** Fragments of the command set being received (a command may span several PDVs). */
  private commandFragments: PresentationDataValue[] = [];
  /** The C-STORE whose data set is arriving. */
  private storing?: { request: StoreRequest; sink: StoreSink };
  /** C-STOREs between their last fragment and their answer. */
  private readonly answering = new Set<Promise<void>>();

  constructor(
    private readonly socket: Socket,
    private readonly opts: ConnectionOptions,
  ) {
    this.peer = peerAddress(socket);
    const reader = new PduReader(
      (type, pdu) => this.onPdu(type, pdu),
      // An unknown PDU type is "unrecognized PDU", a length over the limit "invalid PDU parameter value".
      (err) => this.abort(err instanceof PduTooLongError ? ABORT_REASON.invalidPduParameterValue : ABORT_REASON.unrecognizedPdu, `connection error: ${err.message}`),
      { maxPDataLength: opts.maxPduLength },
    );
    socket.on("data", (chunk: Buffer) => reader.push(chunk));
    socket.on("close", () => this.closed());
    this.arm(opts.artimMs);
  }

  private onPdu(type: number, pdu: Buffer): void {
    if (this.state === "closing") return; // PS3.8 Sta13: everything but the close is ignored
    this.lastActivity = Date.now();
    if (type === PDU_TYPE.abort) {
      // The peer gave up on the association: nothing it sent in flight is acknowledged, so close.
      this.endAssociation();
      this.socket.destroy();
      return;
    }
    if (this.state === "awaitingAssociateRq") {
      if (type !== PDU_TYPE.associateRq) return this.abort(ABORT_REASON.unexpectedPdu, `PDU type ${type} before any A-ASSOCIATE-RQ`);
      return this.associationRequested(pdu);
    }
    if (this.state === "releasing") return this.abort(ABORT_REASON.unexpectedPdu, `PDU type ${type} after the A-RELEASE-RQ`);
    if (type === PDU_TYPE.pDataTf) {
      let pdvs: PresentationDataValue[];
      try {
        pdvs = splitPDataTf(pdu);
      } catch (err) {
        return this.abort(ABORT_REASON.invalidPduParameterValue, (err as Error).message);
      }
      this.inOrder = this.inOrder.then(() => this.onPData(pdvs)).catch((err: Error) => this.abort(err instanceof ProtocolError ? err.reason : ABORT_REASON.invalidPduParameterValue, err.message));
      return;
    }
    if (type === PDU_TYPE.releaseRq) return this.releaseRequested();
    // A second A-ASSOCIATE-RQ (one association per connection), or an -AC/-RJ/-RP this side never asked for.
    this.abort(ABORT_REASON.unexpectedPdu, `PDU type ${type} on an established association`);
  }

  private associationRequested(pdu: Buffer): void {
    let rq: AssociateRequest;
    try {
      rq = parseAssociateRq(pdu);
    } catch (err) {
      return this.abort(ABORT_REASON.invalidPduParameterValue, (err as Error).message);
    }
    const { decision, session } = this.opts.acceptor.associate(rq, this.peer);
    const who = { calling: rq.callingAeTitle, called: rq.calledAeTitle, peer: this.peer };
    if (!decision.accept || !session) {
      this.opts.logger.warn({ ...who, reason: decision.accept ? "no session" : decision.why }, "association rejected");
      if (!decision.accept) this.socket.write(encodeAssociateRj(decision.result, decision.source, decision.reason));
      return this.closeAfterArtim();
    }
    this.session = session;
    this.callingAeTitle = rq.callingAeTitle;
    this.contexts = new Map(decision.contexts.map((c) => [c.id, c]));
    this.state = "associated";
    this.socket.write(
      encodeAssociateAc(rq, decision.contexts, { maxPduLength: this.opts.maxPduLength, implementationClassUid: IMPLEMENTATION_CLASS_UID, implementationVersionName: IMPLEMENTATION_VERSION_NAME }),
    );
    this.opts.logger.debug(who, "association accepted");
    this.arm(this.opts.idleMs);
  }

  /** PS3.8: the A-RELEASE-RP goes out once every C-STORE received before the request is answered. */
  private releaseRequested(): void {
    this.state = "releasing";
    void this.inOrder
      .then(() => Promise.allSettled([...this.answering]))
      .then(() => {
        if (this.state !== "releasing") return;
        this.endAssociation();
        this.socket.write(RELEASE_RP);
        this.closeAfterArtim();
      });
  }

  /** C-STORE-RQ commands and their data sets, and C-ECHO-RQ; anything else ends the association. */
  private async onPData(pdvs: PresentationDataValue[]): Promise<void> {
    // P-DATA queued before an abort: the association is over, nothing of it is taken any more.
    if (this.state === "closing") return;
    for (const pdv of pdvs) {
      const context = this.contexts.get(pdv.getPresentationContextId());
      if (!context || context.result !== CONTEXT_RESULT.acceptance) throw new ProtocolError(`PDV on presentation context ${pdv.getPresentationContextId()}, which was not accepted`);
      if (this.storing) {
        if (pdv.isCommand()) throw new ProtocolError("a command arrived while a C-STORE data set was still arriving");
        if (pdv.getPresentationContextId() !== this.storing.request.presentationContextId) throw new ProtocolError("a C-STORE data set fragment arrived on another presentation context");
        this.storing.sink.append(pdv.getValue());
        if (pdv.isLastFragment()) {
          this.finishStore(this.storing);
          this.storing = undefined;
        }
        continue;
      }
      if (!pdv.isCommand()) throw new ProtocolError("a data set fragment without a command");
      if (this.commandFragments.length && this.commandFragments[0]!.getPresentationContextId() !== pdv.getPresentationContextId()) throw new ProtocolError("a command's fragments on two presentation contexts");
      this.commandFragments.push(pdv);
      if (!pdv.isLastFragment()) continue;
      const fragments = this.commandFragments;
      this.commandFragments = [];
      this.onCommand(fragments.length === 1 ? fragments[0]!.getValue() : Buffer.concat(fragments.map((f) => f.getValue())), context);
    }
  }

  private onCommand(bytes: Buffer, context: ContextResult): void {
    const c = parseCommandSet(bytes);
    // DIMSE only on a context negotiated for its SOP class (PS3.7 9.1.1.1.2 / PS3.8 7.1.1.13).
    if (c.affectedSopClassUid !== context.abstractSyntaxUid) {
      throw new ProtocolError(`command 0x${(c.commandField ?? 0).toString(16)} for SOP class ${c.affectedSopClassUid} on presentation context ${context.id}, negotiated for ${context.abstractSyntaxUid}`);
    }
    if (c.commandField === COMMAND_FIELD.cEchoRq && context.abstractSyntaxUid === SOP_CLASS.VERIFICATION) {
      if (c.messageId === undefined || c.hasDataSet) throw new ProtocolError("C-ECHO-RQ without Message ID or with a data set");
      return this.answer({ commandField: COMMAND_FIELD_C_ECHO_RSP, presentationContextId: context.id, messageIdBeingRespondedTo: c.messageId, affectedSopClassUid: SOP_CLASS.VERIFICATION, status: STORE_STATUS.success });
    }
    if (c.commandField !== COMMAND_FIELD.cStoreRq || context.abstractSyntaxUid === SOP_CLASS.VERIFICATION) {
      throw new ProtocolError(`command 0x${(c.commandField ?? 0).toString(16)} is not offered on presentation context ${context.id}`);
    }
    if (c.messageId === undefined || !c.affectedSopInstanceUid || !c.hasDataSet) throw new ProtocolError("C-STORE-RQ without Message ID, Affected SOP Instance UID or data set");
    // No Asynchronous Operations Window is negotiated, so one operation at a time (PS3.7 D.3.3.3):
    // a sender that does not wait for its answers could otherwise pile up headers awaiting their parse.
    if (this.answering.size) throw new ProtocolError("a C-STORE-RQ before the previous one was answered (no asynchronous operations negotiated)", ABORT_REASON.unexpectedPdu);
    const request: StoreRequest = {
      messageId: c.messageId,
      sopClassUid: c.affectedSopClassUid,
      sopInstanceUid: c.affectedSopInstanceUid,
      presentationContextId: context.id,
      transferSyntaxUid: context.transferSyntaxUid!,
      callingAeTitle: this.callingAeTitle,
    };
    this.storing = { request, sink: this.session!.beginStore(request) };
  }

  /** The last fragment is in: the sink makes the instance durable and records it, then the answer goes out. */
  private finishStore({ request, sink }: { request: StoreRequest; sink: StoreSink }): void {
    const answered: Promise<void> = sink
      .finish()
      .catch((err: Error): StoreResult => {
        this.opts.logger.error({ err: err.message, sop: request.sopInstanceUid, calling: this.callingAeTitle }, "cannot finish received instance");
        return { status: STORE_STATUS.outOfResources, comment: err.message.slice(0, 64) };
      })
      .then((r) =>
        this.answer({
          presentationContextId: request.presentationContextId,
          messageIdBeingRespondedTo: request.messageId,
          affectedSopClassUid: request.sopClassUid,
          affectedSopInstanceUid: request.sopInstanceUid,
          status: r.status,
          errorComment: r.comment,
        }),
      )
      .finally(() => this.answering.delete(answered));
    this.answering.add(answered);
  }

  private answer(fields: Parameters<typeof encodeStoreResponsePdu>[0]): void {
    if (this.socket.destroyed || this.state === "closing") return; // the peer is gone; it resends what it got no answer for
    this.lastActivity = Date.now();
    this.socket.write(encodeStoreResponsePdu(fields));
  }

  /** A-ABORT from the service provider, then the connection closes (at the latest when ARTIM expires). */
  private abort(reason: number, why: string): void {
    if (this.state === "closing") return;
    this.opts.logger.warn({ err: why, peer: this.peer, calling: this.callingAeTitle || undefined }, "DICOM association aborted");
    this.endAssociation();
    if (!this.socket.destroyed) this.socket.write(abortPdu(reason));
    this.closeAfterArtim();
  }

  /** PS3.8 Sta13: this side is done; the peer closes the connection, or ARTIM does. */
  private closeAfterArtim(): void {
    this.state = "closing";
    this.socket.end();
    this.arm(this.opts.artimMs);
  }

  /** The association is over (its slot is free at once, not when the peer finally closes). */
  private endAssociation(): void {
    const session = this.session;
    this.session = undefined;
    // A data set cut off by the end of the association was never acknowledged: its partial file goes.
    this.storing?.sink.abandon();
    this.storing = undefined;
    session?.end();
  }

  /** Starts the state's timer: ARTIM, or the idle timeout (re-armed while there was traffic or an answer is pending). */
  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.lastActivity = Date.now();
    const fire = () => {
      if (this.state === "associated" || this.state === "releasing") {
        const quietFor = Date.now() - this.lastActivity;
        if (quietFor < ms || this.answering.size) {
          this.timer = setTimeout(fire, Math.max(ms - quietFor, 10));
          return;
        }
        return this.abort(ABORT_REASON.notSpecified, `no traffic for ${Math.round(quietFor / 1000)} s (idle timeout)`);
      }
      if (this.state === "awaitingAssociateRq") this.opts.logger.warn({ peer: this.peer }, "no A-ASSOCIATE-RQ before ARTIM expired");
      this.endAssociation();
      this.socket.destroy();
    };
    this.timer = setTimeout(fire, ms);
  }

  private closed(): void {
    clearTimeout(this.timer);
    this.state = "closing";
    this.endAssociation();
  }
}
