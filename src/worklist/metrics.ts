import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * The Prometheus metrics of the service, on a private Registry (several services can live in one
 * process, e.g. in tests). The service's stages update them; the API serves them at GET /metrics.
 */
export interface ServiceMetrics {
  readonly registry: Registry;
  /** DICOM instances accepted by the C-STORE SCP. */
  readonly instancesReceived: Counter<string>;
  /** Studies waiting for a pipeline worker (set by the pipeline on every enqueue/dequeue). */
  readonly queueDepth: Gauge<string>;
  /** Seconds from a study's arrival to its results (state "done"). */
  readonly studyLatency: Histogram<string>;
  /** Seconds of model inference per image. */
  readonly inferenceDuration: Histogram<string>;
  /** Successful sends of result objects, per destination. */
  readonly exportsSucceeded: Counter<"destination">;
  /** Failed send attempts of result objects, per destination (each retry that fails counts). */
  readonly exportFailures: Counter<"destination">;
  /** Studies not analysed because their image failed a gate check, per check. */
  readonly gateFailures: Counter<"check">;
  /** Studies per state right now (filled from the store when scraped). */
  readonly studiesByState: Gauge<"state">;
  /** HTTP requests of the API by route and status. */
  readonly httpRequestDuration: Histogram<"method" | "route" | "status">;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): ServiceMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "cxr_" });
  const registers = [registry];
  return {
    registry,
    instancesReceived: new Counter({ name: "cxr_instances_received_total", help: "DICOM instances accepted by the C-STORE SCP", registers }),
    queueDepth: new Gauge({ name: "cxr_queue_depth", help: "Studies waiting for a pipeline worker", registers }),
    studyLatency: new Histogram({
      name: "cxr_study_latency_seconds",
      help: "Seconds from a study's arrival to its results",
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    }),
    inferenceDuration: new Histogram({
      name: "cxr_inference_seconds",
      help: "Seconds of model inference per image",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    }),
    exportsSucceeded: new Counter({ name: "cxr_exports_total", help: "Result objects sent to a destination", labelNames: ["destination"], registers }),
    exportFailures: new Counter({ name: "cxr_export_failures_total", help: "Sends of result objects that failed", labelNames: ["destination"], registers }),
    gateFailures: new Counter({ name: "cxr_gate_failures_total", help: "Studies not analysed because their image failed a gate check", labelNames: ["check"], registers }),
    studiesByState: new Gauge({ name: "cxr_studies", help: "Studies in the store per state", labelNames: ["state"], registers }),
    httpRequestDuration: new Histogram({
      name: "cxr_http_request_duration_seconds",
      help: "API request duration by route and status",
      labelNames: ["method", "route", "status"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
  };
}
