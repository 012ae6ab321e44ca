import { describe, expect, it } from "vitest";
import { notificationDestinationName } from "../../src/config/notify.ts";
import { resolveConfig } from "../../src/config/service.ts";

describe("notify configuration", () => {
  it("defaults: no destinations; backoff 1 s → 60 s, retry until acknowledged, 10 s per attempt", () => {
    expect(resolveConfig({}).notify).toEqual({ destinations: [], retryInitialSeconds: 1, retryMaxSeconds: 60, maxAttempts: 0, timeoutSeconds: 10 });
    const [hl7] = resolveConfig({ notify: { destinations: [{ kind: "hl7", host: "ris", port: 2575 }] } }).notify.destinations;
    expect(hl7).toMatchObject({ sendingApplication: "CXR-TRIAGE", processingId: "P", acknowledgement: "application", onApplicationError: "retry", onApplicationReject: "fail", optional: false });
    expect(notificationDestinationName(hl7!)).toBe("hl7:RIS@ris:2575");
    // a URL's credentials and query never reach the name (a metric label and log field)
    const [fhir] = resolveConfig({ notify: { destinations: [{ kind: "fhir", url: "https://u:pw@fhir.example/r4/?key=k" }] } }).notify.destinations;
    expect(notificationDestinationName(fhir!)).toBe("fhir:fhir.example/r4");
  });

  it("names each bad key: HL7 delimiters in an application name, duplicate names, a webhook without a secret", () => {
    expect(() => resolveConfig({ notify: { destinations: [{ kind: "hl7", host: "ris", port: 2575, sendingApplication: "A|B" }] } })).toThrow(/notify\.destinations\.0\.sendingApplication: no HL7 delimiters/);
    expect(() => resolveConfig({ notify: { destinations: [{ kind: "fhir", url: "http://f/r4" }, { kind: "fhir", url: "http://f/r4" }] } })).toThrow(/notify\.destinations: two notification destinations have the same name/);
    expect(() => resolveConfig({ notify: { destinations: [{ kind: "webhook", url: "http://h" }] } })).toThrow(/notify\.destinations\.0\.secret/);
    expect(() => resolveConfig({ notify: { destinations: [{ kind: "smtp", url: "x" }] } })).toThrow(/notify\.destinations\.0/);
  });
});

describe("notify configuration on GET /api/config", () => {
  it("hides webhook secrets and FHIR Authorization headers", async () => {
    const { redact } = await import("../../src/config/secrets.ts");
    const cfg = resolveConfig({
      notify: {
        destinations: [
          { kind: "fhir", url: "http://f/r4", headers: { Authorization: "Bearer abc", "X-Site": "a" } },
          { kind: "webhook", url: "http://h", secret: "0123456789abcdef0123" },
        ],
      },
    });
    const shown = redact(cfg) as { notify: { destinations: Record<string, unknown>[] } };
    expect(shown.notify.destinations[0]!.headers).toEqual({ Authorization: "[hidden]", "X-Site": "[hidden]" }); // every header value
    expect(shown.notify.destinations[1]!.secret).toBe("[hidden]");
    expect(JSON.stringify(shown)).not.toMatch(/Bearer abc|0123456789abcdef0123/);
  });
});
