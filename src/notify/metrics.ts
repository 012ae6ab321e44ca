import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { NotificationOutbox } from "../store/roles.ts";

/** The notifier's Prometheus metrics, on the service's registry (served at GET /metrics with the rest). */
export interface NotifyMetrics {
  /** Seconds from the study's last received instance to each destination's positive acknowledgement. */
  readonly timeToNotification: Histogram<"destination">;
  /** Attempts per destination and outcome (delivered, retry, failed). */
  readonly attempts: Counter<"destination" | "outcome">;
}

export function createNotifyMetrics(registry: Registry, outbox: Pick<NotificationOutbox, "notificationCounts">): NotifyMetrics {
  const registers = [registry];
  new Gauge({
    name: "cxr_notifications",
    help: "Notifications in the outbox per destination and state (pending: not yet acknowledged; failed: given up)",
    labelNames: ["destination", "state"],
    registers,
    async collect() {
      this.reset();
      for (const c of await outbox.notificationCounts()) this.set({ destination: c.destination, state: c.state }, c.count);
    },
  });
  return {
    timeToNotification: new Histogram({
      name: "cxr_time_to_notification_seconds",
      help: "Seconds from a study's last received instance to the positive acknowledgement of a notification destination",
      labelNames: ["destination"],
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    attempts: new Counter({ name: "cxr_notification_attempts_total", help: "Notification attempts per destination and outcome", labelNames: ["destination", "outcome"], registers }),
  };
}

