import { describe, expect, it } from "vitest";
import { listenerConfigSchema, SOP_CLASS } from "../../src/config/service.ts";
import { decideAssociation } from "../../src/dicom-listener/association-rules.ts";
import { CONTEXT_RESULT, DICOM_APPLICATION_CONTEXT, parseAssociateRq, REJECT, type AssociateRequest } from "../../src/dicom-listener/upper-layer.ts";
import { associateRq } from "./dimse-bytes.ts";

const config = listenerConfigSchema.parse({
  aeTitle: "CXR",
  allowedCallingAeTitles: ["MOD_A", "MOD_B"],
  allowedHosts: { MOD_B: ["10.0.0.2"] },
  acceptedSopClasses: [SOP_CLASS.CR],
  acceptedTransferSyntaxes: ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"],
  maxAssociations: 4,
  maxAssociationsPerCallingAe: 2,
  maxAssociationsPerHost: 3,
});
const none = { total: 0, fromCallingAe: 0, fromHost: 0 };
const rq = (over: Partial<AssociateRequest> = {}): AssociateRequest => ({
  protocolVersion: 1,
  calledAeTitle: "CXR",
  callingAeTitle: "MOD_A",
  applicationContextName: DICOM_APPLICATION_CONTEXT,
  contexts: [
    { id: 1, abstractSyntaxUid: SOP_CLASS.CR, transferSyntaxUids: ["1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.50"] },
    { id: 3, abstractSyntaxUid: SOP_CLASS.VERIFICATION, transferSyntaxUids: ["1.2.840.10008.1.2"] },
    { id: 5, abstractSyntaxUid: "1.2.840.10008.5.1.4.1.1.2", transferSyntaxUids: ["1.2.840.10008.1.2.1"] },
    { id: 7, abstractSyntaxUid: SOP_CLASS.CR, transferSyntaxUids: ["1.2.840.10008.1.2.2"] },
  ],
  maxPduLength: 16384,
  implementationClassUid: "1.2.3",
  ...over,
});
const rejection = (d: ReturnType<typeof decideAssociation>) => (d.accept ? "accepted" : [d.result, d.source, d.reason]);

describe("association rules (pure: config + A-ASSOCIATE-RQ + open associations)", () => {
  it("accepts each context with the first proposed syntax it can decode, never a transcode", () => {
    const d = decideAssociation(config, rq(), "10.0.0.1", none);
    expect(d.accept && d.contexts.map((c) => [c.id, c.result, c.transferSyntaxUid])).toEqual([
      [1, CONTEXT_RESULT.acceptance, "1.2.840.10008.1.2.4.50"],
      [3, CONTEXT_RESULT.acceptance, "1.2.840.10008.1.2"],
      [5, CONTEXT_RESULT.abstractSyntaxNotSupported, undefined],
      [7, CONTEXT_RESULT.transferSyntaxesNotSupported, undefined],
    ]);
  });

  it("refuses protocol versions without bit 0 and any application context but DICOM's", () => {
    expect(rejection(decideAssociation(config, rq({ protocolVersion: 2 }), "10.0.0.1", none))).toEqual([1, REJECT.acse.source, REJECT.acse.protocolVersionNotSupported]);
    expect(decideAssociation(config, rq({ protocolVersion: 3 }), "10.0.0.1", none).accept).toBe(true); // bit 0 set: version 1 supported
    expect(rejection(decideAssociation(config, rq({ applicationContextName: "1.2.3.4" }), "10.0.0.1", none))).toEqual([1, 1, REJECT.user.applicationContextNameNotSupported]);
  });

  it("refuses unknown called or calling AE titles, and a calling AE from a host it is not allowed from", () => {
    expect(rejection(decideAssociation(config, rq({ calledAeTitle: "OTHER" }), "10.0.0.1", none))).toEqual([1, 1, REJECT.user.calledAeNotRecognized]);
    expect(rejection(decideAssociation(config, rq({ callingAeTitle: "STRANGER" }), "10.0.0.1", none))).toEqual([1, 1, REJECT.user.callingAeNotRecognized]);
    expect(rejection(decideAssociation(config, rq({ callingAeTitle: "MOD_B" }), "10.0.0.1", none))).toEqual([1, 1, REJECT.user.callingAeNotRecognized]);
    expect(decideAssociation(config, rq({ callingAeTitle: "MOD_B" }), "10.0.0.2", none).accept).toBe(true);
  });

  it("limits associations in all, per calling AE title and per host (transient, local limit exceeded)", () => {
    const limit = [REJECT.result.transient, REJECT.presentation.source, REJECT.presentation.localLimitExceeded];
    expect(rejection(decideAssociation(config, rq(), "10.0.0.1", { total: 4, fromCallingAe: 0, fromHost: 0 }))).toEqual(limit);
    expect(rejection(decideAssociation(config, rq(), "10.0.0.1", { total: 2, fromCallingAe: 2, fromHost: 2 }))).toEqual(limit);
    expect(rejection(decideAssociation(config, rq({ callingAeTitle: "MOD_B" }), "10.0.0.2", { total: 3, fromCallingAe: 0, fromHost: 3 }))).toEqual(limit);
    expect(decideAssociation(config, rq(), "10.0.0.1", { total: 3, fromCallingAe: 1, fromHost: 2 }).accept).toBe(true);
  });

  it("reads what it decides on from the A-ASSOCIATE-RQ bytes", () => {
    const parsed = parseAssociateRq(associateRq("CXR", "MOD_A", SOP_CLASS.CR));
    expect(parsed).toMatchObject({ protocolVersion: 1, calledAeTitle: "CXR", callingAeTitle: "MOD_A", applicationContextName: DICOM_APPLICATION_CONTEXT, maxPduLength: 16384, implementationClassUid: "1.2.3.4" });
    expect(parsed.contexts).toEqual([{ id: 1, abstractSyntaxUid: SOP_CLASS.CR, transferSyntaxUids: ["1.2.840.10008.1.2.1"] }]);
    expect(() => parseAssociateRq(associateRq("CXR", "MOD_A", SOP_CLASS.CR).subarray(0, 60))).toThrow(/shorter/);
  });
});
