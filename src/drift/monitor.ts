import { readFileSync, writeFileSync } from "node:fs";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import type { ImageStatistics } from "../gate/statistics.ts";
import { ksCritical, shift, type Shift } from "./psi.ts";

/**
 * Drift monitoring: what the service sees (input image statistics, each label's probability, gate
 * outcomes) over a rolling window of recent studies, compared with a reference sample taken from the
 * model's validation data (`cxr drift-reference`). Exposed as Prometheus gauges, at GET /api/drift,
 * and as a warning in the log when a quantity's PSI passes the threshold.
 */
export const INPUT_QUANTITIES = ["image mean", "image std", "grey levels"] as const;

export interface DriftReference {
  /** What the sample is: model, data, split, count. */
  source: string;
  createdAt: string;
  /** Per quantity (labels by name, and INPUT_QUANTITIES), the reference values. */
  values: Record<string, number[]>;
}

export interface DriftObservation {
  statistics: ImageStatistics;
  /** Label → probability; absent when the gate stopped the study. */
  probabilities?: Record<string, number>;
  gatePassed: boolean;
}

export interface DriftStatus {
  reference: string;
  window: number;
  observed: number;
  threshold: number;
  ksAlpha: number;
  /** Share of the window's studies the gate stopped. */
  gateFailureRate: number | null;
  quantities: Record<string, Shift & { ksCritical: number; alert: boolean }>;
  alerts: string[];
}

export function inputValues(s: ImageStatistics): Record<string, number> {
  return { "image mean": s.mean, "image std": s.std, "grey levels": s.greyLevels };
}

export function readDriftReference(path: string): DriftReference {
  try {
    const r = JSON.parse(readFileSync(path, "utf8")) as DriftReference;
    if (!r.values || typeof r.values !== "object") throw new Error("no values");
    return r;
  } catch (err) {
    throw new Error(`${path}: not a drift reference (${(err as Error).message}); make one with cxr drift-reference`);
  }
}

export function writeDriftReference(path: string, r: DriftReference): void {
  writeFileSync(path, `${JSON.stringify(r)}\n`);
}

export interface DriftOptions {
  reference: DriftReference;
  /** Studies in the rolling window. */
  window: number;
  /** PSI above which a quantity is reported as drifted… */
  psiAlert: number;
  /** …when the KS test also rejects equal distributions at this level (small windows make PSI noisy). */
  ksAlpha: number;
  /** Studies needed before anything is compared (a PSI of a handful is noise). */
  minSamples: number;
  logger?: Logger;
  registry?: Registry;
}

export class DriftMonitor {
  private readonly recent: DriftObservation[] = [];
  private readonly alerting = new Set<string>();
  private readonly psiGauge?: Gauge<"quantity">;
  private readonly ksGauge?: Gauge<"quantity">;
  private readonly gateGauge?: Gauge<string>;

  constructor(private readonly o: DriftOptions) {
    if (o.registry) {
      const registers = [o.registry];
      this.psiGauge = new Gauge({ name: "cxr_drift_psi", help: "PSI of a quantity over the recent window against the model's reference", labelNames: ["quantity"], registers });
      this.ksGauge = new Gauge({ name: "cxr_drift_ks", help: "Kolmogorov-Smirnov statistic of a quantity over the recent window against the model's reference", labelNames: ["quantity"], registers });
      this.gateGauge = new Gauge({ name: "cxr_drift_gate_failure_rate", help: "Share of the recent window's studies the image gate stopped", registers });
    }
  }

  observe(obs: DriftObservation): void {
    this.recent.push(obs);
    if (this.recent.length > this.o.window) this.recent.shift();
    this.update();
  }

  status(): DriftStatus {
    const n = this.recent.length;
    const quantities: DriftStatus["quantities"] = {};
    if (n >= this.o.minSamples) {
      for (const [q, ref] of Object.entries(this.o.reference.values)) {
        const values = this.recent.map((r) => (q in (r.probabilities ?? {}) ? r.probabilities![q]! : inputValues(r.statistics)[q])).filter((v): v is number => v !== undefined);
        if (values.length < this.o.minSamples) continue;
        const s = shift(ref, values);
        const ksCrit = ksCritical(ref.length, values.length, this.o.ksAlpha);
        quantities[q] = { ...s, ksCritical: ksCrit, alert: s.psi > this.o.psiAlert && s.ks > ksCrit };
      }
    }
    return {
      reference: this.o.reference.source,
      window: this.o.window,
      observed: n,
      threshold: this.o.psiAlert,
      ksAlpha: this.o.ksAlpha,
      gateFailureRate: n ? this.recent.filter((r) => !r.gatePassed).length / n : null,
      quantities,
      alerts: Object.entries(quantities).filter(([, s]) => s.alert).map(([q, s]) => `${q}: PSI ${s.psi.toFixed(3)} > ${this.o.psiAlert} and KS ${s.ks.toFixed(3)} > ${s.ksCritical.toFixed(3)} (alpha ${this.o.ksAlpha}) over the last ${s.n} studies`),
    };
  }

  private update(): void {
    const st = this.status();
    if (st.gateFailureRate !== null) this.gateGauge?.set(st.gateFailureRate);
    for (const [q, s] of Object.entries(st.quantities)) {
      this.psiGauge?.set({ quantity: q }, s.psi);
      this.ksGauge?.set({ quantity: q }, s.ks);
      // One warning when a quantity crosses the threshold, one when it is back.
      if (s.alert && !this.alerting.has(q)) {
        this.alerting.add(q);
        this.o.logger?.warn({ quantity: q, psi: s.psi, ks: s.ks, window: s.n, threshold: this.o.psiAlert }, `drift: ${q} PSI ${s.psi.toFixed(3)} > ${this.o.psiAlert} against ${this.o.reference.source}`);
      } else if (!s.alert && this.alerting.delete(q)) {
        this.o.logger?.info({ quantity: q, psi: s.psi }, `drift: ${q} back within the threshold`);
      }
    }
  }
}
