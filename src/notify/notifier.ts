import type { Logger } from "pino";
import { notificationDestinationName, type NotifyConfig, type NotifyDestination } from "../config/notify.ts";
import type { PriorityConfig } from "../config/worklist.ts";
import type { NotificationOutbox, WorklistReader } from "../store/roles.ts";
import type { FindingResult, NewNotification, NotificationRecord } from "../store/types.ts";
import { prioritize } from "../worklist/priority.ts";
import { sendBundle } from "./fhir.ts";
import { sendOru } from "./hl7.ts";
import type { NotifyMetrics } from "./metrics.ts";
import type { DeliveryOutcome } from "./outcome.ts";
import { triageReport, type TriageReport } from "./report.ts";
import { sendWebhook } from "./webhook.ts";
import { RetryLoop } from "../export/retry-loop.ts";

/** The outbox rows new results need: every destination, webhooks only for the priorities they ask for. */
export function notificationsFor(findings: FindingResult[], config: { notify: NotifyConfig; priority: PriorityConfig }): NewNotification[] {
  const { priority } = prioritize({ studyInstanceUid: "", state: "done", history: [], receivedAt: "", updatedAt: "", findings }, config.priority);
  return config.notify.destinations
    .filter((d) => d.kind !== "webhook" || d.priorities.includes(priority))
    .map((d) => ({ destination: notificationDestinationName(d), required: !d.optional }));
}

export interface NotifierOptions {
  store: NotificationOutbox & Pick<WorklistReader, "get">;
  config: { notify: NotifyConfig; priority: PriorityConfig };
  logger: Logger;
  metrics?: NotifyMetrics;
  /** A notification was delivered (a study waiting for it may now be "exported"). */
  onDelivered?: (studyUid: string) => void;
}

/**
 * Sends what the outbox holds: claims due notifications, sends each to its destination (HL7 MLLP,
 * FHIR, webhook), and records the outcome — delivered only on a positive acknowledgement; otherwise
 * retried with exponential backoff (initial × 2^attempts, capped) until it is, or given up as the
 * destination's configuration says, with the reason kept. The schedule is in the store: it survives
 * restarts, and several nodes never send the same notification at once.
 */
export class Notifier {
  private readonly byName: Map<string, NotifyDestination>;
  private readonly loop = new RetryLoop(
    () => this.pass(),
    (err) => this.opts.logger.error({ err: err.message }, "notification pass failed"),
  );

  constructor(private readonly opts: NotifierOptions) {
    this.byName = new Map(opts.config.notify.destinations.map((d) => [notificationDestinationName(d), d]));
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Look for work now (new results were recorded). */
  kick(): void {
    this.loop.kick();
  }

  private get timeoutMs(): number {
    return this.opts.config.notify.timeoutSeconds * 1000;
  }

  /** Sends every due notification; returns when the next one is due. */
  private async pass(): Promise<number | undefined> {
    // A claim outlasts one attempt (connect + acknowledgement) with room to record its outcome.
    const due = await this.opts.store.claimDueNotifications(Date.now(), 2 * this.timeoutMs + 5000);
    await Promise.all(due.map((n) => this.attempt(n)));
    return this.opts.store.nextNotificationAt();
  }

  /** One attempt of one notification, its outcome recorded. */
  async attempt(n: NotificationRecord): Promise<void> {
    const { store, logger, metrics } = this.opts;
    const outcome = await this.send(n);
    const where = { study: n.studyInstanceUid, destination: n.destination, attempt: n.attempts + 1 };
    if (outcome.delivered) {
      if (await store.markNotificationDelivered(n.studyInstanceUid, n.destination, n.resultsKey, outcome.ack)) {
        metrics?.timeToNotification.observe({ destination: n.destination }, Math.max(0, Date.now() - n.lastInstanceAt) / 1000);
        metrics?.attempts.inc({ destination: n.destination, outcome: "delivered" });
        logger.info({ ...where, ack: outcome.ack }, "notification delivered");
        this.opts.onDelivered?.(n.studyInstanceUid);
      }
      return;
    }
    const { retryInitialSeconds, retryMaxSeconds, maxAttempts } = this.opts.config.notify;
    const giveUp = !outcome.retry || (maxAttempts > 0 && n.attempts + 1 >= maxAttempts);
    const delay = Math.min(retryMaxSeconds, retryInitialSeconds * 2 ** n.attempts) * 1000;
    await store.markNotificationAttemptFailed(n.studyInstanceUid, n.destination, n.resultsKey, outcome.error, giveUp ? undefined : Date.now() + delay);
    metrics?.attempts.inc({ destination: n.destination, outcome: giveUp ? "failed" : "retry" });
    if (giveUp) logger.error({ ...where, error: outcome.error }, "notification failed; not retried");
    else logger.warn({ ...where, error: outcome.error, retryInMs: delay }, "notification not acknowledged; will retry");
  }

  private async send(n: NotificationRecord): Promise<DeliveryOutcome> {
    const dest = this.byName.get(n.destination);
    if (!dest) return { delivered: false, error: `destination ${n.destination} is no longer configured`, retry: false };
    let report: TriageReport;
    try {
      const rec = await this.opts.store.get(n.studyInstanceUid);
      if (!rec) return { delivered: false, error: "study no longer in the store", retry: false };
      report = triageReport(rec, this.opts.config.priority);
    } catch (err) {
      return { delivered: false, error: (err as Error).message, retry: false };
    }
    const common = { resultsKey: n.resultsKey, attempt: n.attempts + 1, timeoutMs: this.timeoutMs };
    try {
      if (dest.kind === "hl7") return await sendOru(report, dest, common);
      if (dest.kind === "fhir") return await sendBundle(report, dest, common);
      return await sendWebhook(report, dest, common);
    } catch (err) {
      // Before anything was sent (e.g. a TLS or secret file unreadable): a failed attempt like any other.
      return { delivered: false, error: `cannot send: ${(err as Error).message}`, retry: true };
    }
  }
}
