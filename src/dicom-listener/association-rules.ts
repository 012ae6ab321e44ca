/**
 * Who may associate, and on which presentation contexts: a pure function of the configuration, the
 * A-ASSOCIATE-RQ, the peer's address and the associations already open (no sockets, no state).
 */
import type { ListenerConfig } from "../config/service.ts";
import { SOP_CLASS } from "../config/service.ts";
import { CONTEXT_RESULT, DICOM_APPLICATION_CONTEXT, REJECT, type AssociateRequest, type ContextResult } from "./upper-layer.ts";

export type AssociationRulesConfig = Pick<
  ListenerConfig,
  | "aeTitle"
  | "checkCalledAeTitle"
  | "allowedCallingAeTitles"
  | "allowedHosts"
  | "acceptedSopClasses"
  | "acceptedTransferSyntaxes"
  | "maxAssociations"
  | "maxAssociationsPerCallingAe"
  | "maxAssociationsPerHost"
>;

/** Associations open now (not counting the one being decided). */
export interface OpenAssociations {
  total: number;
  fromCallingAe: number;
  fromHost: number;
}

export type AssociationDecision =
  | { accept: true; contexts: ContextResult[] }
  | { accept: false; result: number; source: number; reason: number; why: string };

const VERIFICATION_SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"];

export function decideAssociation(config: AssociationRulesConfig, rq: AssociateRequest, peerHost: string, open: OpenAssociations): AssociationDecision {
  const permanent = (source: number, reason: number, why: string) => ({ accept: false as const, result: REJECT.result.permanent, source, reason, why });
  const transient = (why: string) => ({ accept: false as const, result: REJECT.result.transient, source: REJECT.presentation.source, reason: REJECT.presentation.localLimitExceeded, why });
  // PS3.8 9.3.2: bit 0 is protocol version 1, the only one defined.
  if ((rq.protocolVersion & 1) === 0) return permanent(REJECT.acse.source, REJECT.acse.protocolVersionNotSupported, `protocol version 0x${rq.protocolVersion.toString(16)} has no bit 0 set`);
  if (rq.applicationContextName !== DICOM_APPLICATION_CONTEXT) {
    return permanent(REJECT.user.source, REJECT.user.applicationContextNameNotSupported, `application context "${rq.applicationContextName}" is not ${DICOM_APPLICATION_CONTEXT}`);
  }
  const called = rq.calledAeTitle.trim();
  const calling = rq.callingAeTitle.trim();
  if (config.checkCalledAeTitle && called !== config.aeTitle.trim()) return permanent(REJECT.user.source, REJECT.user.calledAeNotRecognized, `called AE "${called}" is not ${config.aeTitle.trim()}`);
  const allowedCalling = config.allowedCallingAeTitles.map((a) => a.trim());
  if (allowedCalling.length && !allowedCalling.includes(calling)) return permanent(REJECT.user.source, REJECT.user.callingAeNotRecognized, `calling AE "${calling}" is not allowed`);
  const hosts = config.allowedHosts[calling];
  if (hosts && !hosts.includes(peerHost)) return permanent(REJECT.user.source, REJECT.user.callingAeNotRecognized, `calling AE "${calling}" is not allowed from ${peerHost}`);
  if (open.total >= config.maxAssociations) return transient(`${open.total} associations open (maxAssociations ${config.maxAssociations})`);
  if (open.fromHost >= config.maxAssociationsPerHost) return transient(`${open.fromHost} associations open from ${peerHost} (maxAssociationsPerHost ${config.maxAssociationsPerHost})`);
  if (open.fromCallingAe >= config.maxAssociationsPerCallingAe) return transient(`${open.fromCallingAe} associations open from "${calling}" (maxAssociationsPerCallingAe ${config.maxAssociationsPerCallingAe})`);
  return { accept: true, contexts: rq.contexts.map((c) => contextResult(config, c.id, c.abstractSyntaxUid, c.transferSyntaxUids)) };
}

function contextResult(config: AssociationRulesConfig, id: number, abstractSyntaxUid: string, proposed: string[]): ContextResult {
  let usable: readonly string[];
  if (abstractSyntaxUid === SOP_CLASS.VERIFICATION) usable = VERIFICATION_SYNTAXES;
  else if (config.acceptedSopClasses.includes(abstractSyntaxUid)) usable = config.acceptedTransferSyntaxes;
  else return { id, abstractSyntaxUid, result: CONTEXT_RESULT.abstractSyntaxNotSupported };
  // As proposed: the first syntax the sender offers that we can decode — never a transcode.
  const ts = proposed.find((t) => usable.includes(t));
  return ts ? { id, abstractSyntaxUid, result: CONTEXT_RESULT.acceptance, transferSyntaxUid: ts } : { id, abstractSyntaxUid, result: CONTEXT_RESULT.transferSyntaxesNotSupported };
}
