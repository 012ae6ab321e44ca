import { z } from "zod";
import { secretString, urlDestinationName } from "./secrets.ts";

/**
 * The `notify` section of the service configuration (issue #16): where a study's triage result is
 * announced besides the PACS — a RIS over HL7 v2 (MLLP), a FHIR R4 server, webhooks. Parses `{}` to
 * "no destinations".
 */

const tlsSchema = z
  .object({
    /** PEM files: the CA that signs the peer's certificate; our certificate and key when the peer asks for one. */
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    /** Name checked against the peer's certificate (default: host). */
    servername: z.string().optional(),
  })
  .strict();

const common = {
  /** Name in the store, metrics and logs (default: kind:where, see notificationDestinationName). */
  name: z.string().min(1).max(200).optional(),
  /** Optional: the study is "exported" without waiting for this destination's acknowledgement. */
  optional: z.boolean().default(false),
};

const hl7Application = z.string().max(180).regex(/^[^|^~\\&\r\n]*$/, "no HL7 delimiters (| ^ ~ \\ &)");

export const hl7DestinationSchema = z
  .object({
    kind: z.literal("hl7"),
    ...common,
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    /** MSH-3/4 and MSH-5/6. */
    sendingApplication: hl7Application.default("CXR-TRIAGE"),
    sendingFacility: hl7Application.default(""),
    receivingApplication: hl7Application.default(""),
    receivingFacility: hl7Application.default(""),
    /** MSH-11: P production, T training, D debugging. */
    processingId: z.enum(["P", "T", "D"]).default("P"),
    tls: tlsSchema.optional(),
    /**
     * Which acknowledgement delivers: "application" (AA, after a commit CA if the receiver sends one;
     * MSH-15/16 AL/AL) or "commit" (CA or AA: the receiver has taken custody; MSH-16 NE).
     */
    acknowledgement: z.enum(["application", "commit"]).default("application"),
    /** What an application error (AE) or reject (AR) acknowledgement does: try again later, or give up (reason kept). */
    onApplicationError: z.enum(["retry", "fail"]).default("retry"),
    onApplicationReject: z.enum(["retry", "fail"]).default("fail"),
  })
  .strict();

export const fhirDestinationSchema = z
  .object({
    kind: z.literal("fhir"),
    ...common,
    /** FHIR R4 base URL; the transaction Bundle is POSTed to it (a string, { env } or { file }). */
    url: secretString(z.url()),
    /** Extra request headers (e.g. Authorization), each a string, { env } or { file }. */
    headers: z.record(z.string(), secretString(z.string())).default({}),
  })
  .strict();

export const webhookDestinationSchema = z
  .object({
    kind: z.literal("webhook"),
    ...common,
    url: z.url(),
    /** The HMAC-SHA256 key: a string, { env: NAME } or { file: PATH } (the one rule for secrets, secrets.ts). */
    secret: secretString(z.string().min(16, "a webhook secret has at least 16 characters")),
    /** Header carrying "sha256=<hex HMAC of the body>". */
    signatureHeader: z.string().min(1).default("X-Cxr-Signature"),
    /** Studies of these priorities are announced (default: urgent only). */
    priorities: z.array(z.enum(["urgent", "review", "routine"])).min(1).default(["urgent"]),
    /** Patient name, ID and accession number in the body (off: identifiers of the study only). */
    includePhi: z.boolean().default(false),
  })
  .strict();

// By `kind`, so that an error names the key of the destination it is in (a plain union says only "Invalid input").
export const notifyDestinationSchema = z.discriminatedUnion("kind", [hl7DestinationSchema, fhirDestinationSchema, webhookDestinationSchema]);

export const notifyConfigSchema = z
  .object({
    destinations: z.array(notifyDestinationSchema).default([]),
    /** Exponential backoff between attempts: initial × 2^n, capped. */
    retryInitialSeconds: z.number().positive().default(1),
    retryMaxSeconds: z.number().positive().default(60),
    /** Attempts before a notification is given up ("failed", reason kept); 0 = never give up. */
    maxAttempts: z.number().int().min(0).default(0),
    /** Connect + acknowledgement timeout of one attempt. */
    timeoutSeconds: z.number().positive().default(10),
  })
  .strict()
  .refine((n) => new Set(n.destinations.map(notificationDestinationName)).size === n.destinations.length, {
    message: "two notification destinations have the same name",
    path: ["destinations"],
  });

export type NotifyConfig = z.infer<typeof notifyConfigSchema>;
export type NotifyDestination = z.infer<typeof notifyDestinationSchema>;
export type Hl7Destination = z.infer<typeof hl7DestinationSchema>;
export type FhirDestination = z.infer<typeof fhirDestinationSchema>;
export type WebhookDestination = z.infer<typeof webhookDestinationSchema>;

/** The name a notification destination is recorded under in the store (outbox) and in metrics. */
export function notificationDestinationName(d: NotifyDestination): string {
  if (d.name) return d.name;
  if (d.kind === "hl7") return `hl7:${d.receivingApplication || "RIS"}@${d.host}:${d.port}`;
  return `${d.kind}:${urlDestinationName(d.url)}`;
}
