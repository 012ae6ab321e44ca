import { createHash, createHmac } from "node:crypto";
import type { WebhookDestination } from "../config/notify.ts";
import type { DeliveryOutcome } from "./outcome.ts";
import { PRIORITIZATION_STATEMENT, type TriageReport } from "./report.ts";
import { postJson, retryableStatus } from "./http.ts";

/**
 * Webhooks (pager, chat): a JSON POST signed with HMAC-SHA256 over the exact body bytes, in
 * `<signatureHeader>: sha256=<hex>`. The body names the study by its UIDs only, unless `includePhi`.
 */

export const WEBHOOK_EVENT = "cxr-triage.study.triaged";

export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

export function webhookBody(report: TriageReport, dest: WebhookDestination, resultsKey: string): Record<string, unknown> {
  return {
    event: WEBHOOK_EVENT,
    /** The same for every attempt of these results: receivers drop repeats by it. */
    id: createHash("sha256").update(`${report.studyInstanceUid}|${resultsKey}`).digest("hex").slice(0, 32),
    studyInstanceUid: report.studyInstanceUid,
    priority: report.priority.priority,
    score: report.priority.score,
    reason: report.priority.reason,
    findings: report.findings.filter((f) => f.positive).map((f) => ({ label: f.label, probability: f.probability, operatingPoint: f.threshold })),
    model: { name: report.model.name, version: report.model.version, deviceUid: report.model.deviceUid },
    resultsAt: report.resultsAt,
    statement: PRIORITIZATION_STATEMENT,
    ...(dest.includePhi && {
      patient: { name: report.patientName ?? null, id: report.patientId ?? null },
      accessionNumber: report.accessionNumber ?? null,
    }),
  };
}

export async function sendWebhook(report: TriageReport, dest: WebhookDestination, opts: { resultsKey: string; timeoutMs: number }): Promise<DeliveryOutcome> {
  const body = JSON.stringify(webhookBody(report, dest, opts.resultsKey));
  const headers = { [dest.signatureHeader]: webhookSignature(dest.secret, body) };
  const res = await postJson(dest.url, body, headers, opts.timeoutMs);
  if (res.status === undefined) return { delivered: false, error: `${dest.url}: ${res.error}`, retry: true };
  if (res.status >= 200 && res.status < 300) return { delivered: true, ack: `HTTP ${res.status}` };
  return { delivered: false, error: `${dest.url}: HTTP ${res.status} ${res.text.slice(0, 200)}`, retry: retryableStatus(res.status) };
}
