import { z } from "zod";
import { isNihLabel, NIH_LABELS } from "../model/labels.ts";
import { secretString } from "./secrets.ts";

/**
 * The `api` and `priority` sections of the service configuration (issue #6). The root schema in
 * src/config/ embeds `apiConfigSchema` as `api` and `priorityConfigSchema` as `priority`; both parse
 * `{}` to their defaults.
 */

export const API_DEFAULTS = {
  httpPort: 8080,
  bindAddress: "127.0.0.1",
} as const;

export const apiConfigSchema = z
  .object({
    /** HTTP port of the REST API, WebSocket, worklist page and viewer (0 = any free port). */
    httpPort: z.number().int().min(0).max(65535).default(API_DEFAULTS.httpPort),
    /** Loopback by default: the worklist carries patient data and must be exposed on purpose. */
    bindAddress: z.string().min(1).default(API_DEFAULTS.bindAddress),
    /** Bearer tokens accepted by every authenticated route; the server refuses to start without one. Each a string, { env } or { file }. */
    tokens: z.array(secretString(z.string().min(16, "api.tokens: a token needs at least 16 characters"))).default([]),
    /** Whether logs may carry patient names, IDs and accession numbers (off: they are left out). */
    logPhi: z.boolean().default(false),
    /**
     * DICOMweb base URL of the PACS that holds the results (e.g. http://pacs:8042/dicom-web): the
     * study page links each SR/SC there. Absent: no PACS links are given. User-info is sent as HTTP
     * Basic authentication by the viewer's proxy and never shown. A string, { env } or { file }.
     */
    pacsDicomWebUrl: secretString(z.url()).optional(),
    /**
     * Minutes a browser session (the cookie the page and viewer get for a token in their address)
     * lasts without use; an open worklist WebSocket keeps it alive.
     */
    sessionMinutes: z.number().positive().default(30),
    /** Origins besides this server's own whose pages may open the WebSocket (e.g. an OHIF on another host). */
    allowedOrigins: z.array(z.url().transform((u) => new URL(u).origin)).default([]),
  })
  .strict();

export const findingPriorityConfigSchema = z
  .object({
    /** Probability at or above which the finding counts as present; replaces the model card's threshold. */
    operatingPoint: z.number().min(0).max(1).optional(),
    /** Urgency weight: a study's score is max(weight × probability); weight ≥ urgentWeight makes a positive finding urgent. */
    weight: z.number().min(0).optional(),
  })
  .strict();

export const PRIORITY_DEFAULTS = {
  defaultWeight: 1,
  urgentWeight: 2,
  findings: {
    Pneumothorax: { weight: 2 },
    Effusion: { weight: 2 },
  } as Record<string, { operatingPoint?: number; weight?: number }>,
};

export const priorityConfigSchema = z
  .object({
    /** Weight of findings not listed in `findings`. */
    defaultWeight: z.number().min(0).default(PRIORITY_DEFAULTS.defaultWeight),
    /** A positive finding whose weight is at least this makes the study "urgent". */
    urgentWeight: z.number().min(0).default(PRIORITY_DEFAULTS.urgentWeight),
    /**
     * Per finding (model label, e.g. "Pneumothorax"): operating point and urgency weight. A name that is
     * not a label is an error: a misspelt urgent finding would otherwise silently never be urgent.
     */
    findings: z
      .record(z.string(), findingPriorityConfigSchema)
      .superRefine((findings, ctx) => {
        for (const name of Object.keys(findings)) {
          if (!isNihLabel(name)) ctx.addIssue({ code: "custom", path: [name], message: `'${name}' is not a finding label (one of ${NIH_LABELS.join(", ")})` });
        }
      })
      .default(() => structuredClone(PRIORITY_DEFAULTS.findings)),
  })
  .strict();

export type ApiConfig = z.infer<typeof apiConfigSchema>;
export type PriorityConfig = z.infer<typeof priorityConfigSchema>;
export type FindingPriorityConfig = z.infer<typeof findingPriorityConfigSchema>;

export const worklistConfigSchema = z.object({
  api: apiConfigSchema.default(() => apiConfigSchema.parse({})),
  priority: priorityConfigSchema.default(() => priorityConfigSchema.parse({})),
});
export type WorklistConfig = z.infer<typeof worklistConfigSchema>;

export const DEFAULT_API_CONFIG: ApiConfig = apiConfigSchema.parse({});
export const DEFAULT_PRIORITY_CONFIG: PriorityConfig = priorityConfigSchema.parse({});
