import { readFileSync, writeFileSync } from "node:fs";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import type { GateCheck } from "../gate/gate.ts";
import type { ImageStatistics } from "../gate/statistics.ts";
import { categoricalShift, ksCritical, shift, type Shift } from "./psi.ts";

/**
 * Drift monitoring: what the service sees (input properties and image statistics, each label's
 * probability, gate outcomes) over a rolling window of recent studies and per UTC day, compared with
 * a reference sample taken from the model's validation data (`cxr drift-reference`). Exposed as
 * Prometheus gauges, at GET /api/drift, on the /drift page, and as a warning in the log when a
 * quantity of the window passes the threshold.
 */
export const INPUT_QUANTITIES = ["image mean", "image std", "grey levels", "pixel spacing", "bits stored"] as const;
/** Compared by their category shares (PSI over categories; no KS, which needs an order). */
export const CATEGORICAL_QUANTITIES = ["manufacturer", "modality", "gate outcome"] as const;

export interface DriftReference {
  /** What the sample is: model, data, split, count. */
  source: string;
  createdAt: string;
  /** Per numeric quantity (labels by name, and INPUT_QUANTITIES), the reference values. */
  values: Record<string, number[]>;
  /** Per categorical quantity (CATEGORICAL_QUANTITIES), the reference values. */
  categories?: Record<string, string[]>;
  /** Quantities the reference data cannot give, and why (NIH PNGs have no DICOM header). */
  unavailable?: Record<string, string>;
}

/** What the image's DICOM header says (absent attributes stay absent). */
export interface InputProperties {
  manufacturer?: string;
  modality?: string;
  /** Pixel Spacing, else Imager Pixel Spacing: the row spacing in mm. */
  pixelSpacing?: number;
  bitsStored?: number;
}

export interface DriftObservation {
  statistics: ImageStatistics;
  input?: InputProperties;
  /** Label → probability; absent when the gate stopped the study. */
  probabilities?: Record<string, number>;
  /** "passed", or the gate's check that failed; absent when no gate ran. */
  gate?: "passed" | GateCheck;
}

export interface QuantityStatus extends Shift {
  kind: "numeric" | "categorical";
  /** The KS value past which the samples differ at ksAlpha (numeric quantities only). */
  ksCritical?: number;
  alert: boolean;
}

/** A quantity the service observed but the reference does not have: its current distribution only. */
export interface UnreferencedQuantity {
  reason: string;
  n: number;
  /** Categorical: category shares; numeric: min, quartiles, max. */
  summary: { labels: string[]; values: number[] };
}

export interface DriftComparison {
  observed: number;
  /** Share of the studies the gate stopped (null when no gate ran on any). */
  gateFailureRate: number | null;
  /** Per failing check, its share of the studies the gate looked at. */
  gateFailures: Record<string, number>;
  quantities: Record<string, QuantityStatus>;
  notInReference: Record<string, UnreferencedQuantity>;
}

export interface DriftDay {
  /** UTC day, YYYY-MM-DD. */
  day: string;
  observed: number;
  gateFailureRate: number | null;
  gateFailures: Record<string, number>;
  /** Per quantity compared that day (days with fewer than minSamples studies have none). */
  quantities: Record<string, { psi: number; ks?: number; pValue?: number; n: number; alert: boolean }>;
}

export interface DriftStatus extends DriftComparison {
  reference: string;
  window: number;
  threshold: number;
  ksAlpha: number;
  minSamples: number;
  /** Days kept (config drift.days), oldest first. */
  days: DriftDay[];
  alerts: string[];
}

function quartiles(v: readonly number[]): number[] {
  const s = [...v].sort((a, b) => a - b);
  return [0, 0.25, 0.5, 0.75, 1].map((q) => s[Math.round(q * (s.length - 1))]!);
}

/** The numeric input quantities of one image (undefined where its header does not say). */
export function inputValues(s: ImageStatistics, input: InputProperties = {}): Record<string, number | undefined> {
  return { "image mean": s.mean, "image std": s.std, "grey levels": s.greyLevels, "pixel spacing": input.pixelSpacing, "bits stored": input.bitsStored };
}

export function categoricalValues(o: Pick<DriftObservation, "input" | "gate">): Record<string, string | undefined> {
  return { manufacturer: o.input?.manufacturer, modality: o.input?.modality, "gate outcome": o.gate };
}

function numericValue(o: DriftObservation, q: string): number | undefined {
  return o.probabilities && q in o.probabilities ? o.probabilities[q] : inputValues(o.statistics, o.input)[q];
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
  /** UTC days kept for the per-day statistics. */
  days: number;
  /** PSI above which a quantity is reported as drifted… */
  psiAlert: number;
  /** …when the KS test (numeric) or the chi-square test (categorical) also rejects equal distributions at this level (small windows make PSI noisy). */
  ksAlpha: number;
  /** Studies needed before anything is compared (a PSI of a handful is noise). */
  minSamples: number;
  logger?: Logger;
  registry?: Registry;
  /** The clock that files observations under their UTC day. */
  now?: () => Date;
}

export class DriftMonitor {
  private readonly recent: DriftObservation[] = [];
  /** UTC day → that day's observations; at most `days` days. */
  private readonly byDay = new Map<string, DriftObservation[]>();
  private readonly alerting = new Set<string>();
  private readonly psiGauge?: Gauge<"quantity">;
  private readonly ksGauge?: Gauge<"quantity">;
  private readonly gateGauge?: Gauge<string>;
  private readonly gateCheckGauge?: Gauge<"check">;

  constructor(private readonly o: DriftOptions) {
    if (o.registry) {
      const registers = [o.registry];
      this.psiGauge = new Gauge({ name: "cxr_drift_psi", help: "PSI of a quantity over the recent window against the model's reference", labelNames: ["quantity"], registers });
      this.ksGauge = new Gauge({ name: "cxr_drift_ks", help: "Kolmogorov-Smirnov statistic of a numeric quantity over the recent window against the model's reference", labelNames: ["quantity"], registers });
      this.gateGauge = new Gauge({ name: "cxr_drift_gate_failure_rate", help: "Share of the recent window's studies the image gate stopped", registers });
      this.gateCheckGauge = new Gauge({ name: "cxr_drift_gate_failure_share", help: "Share of the recent window's studies that failed a gate check, per check", labelNames: ["check"], registers });
    }
  }

  observe(obs: DriftObservation): void {
    this.recent.push(obs);
    if (this.recent.length > this.o.window) this.recent.shift();
    const day = (this.o.now?.() ?? new Date()).toISOString().slice(0, 10);
    const list = this.byDay.get(day) ?? [];
    if (!list.length) {
      this.byDay.set(day, list);
      // The oldest days go first (by date, not by arrival: the clock may have been set back).
      while (this.byDay.size > this.o.days) this.byDay.delete([...this.byDay.keys()].sort()[0]!);
    }
    list.push(obs);
    this.update();
  }

  /** One set of observations (the window, or one day) against the reference. */
  compare(observations: readonly DriftObservation[]): DriftComparison {
    const n = observations.length;
    const { reference, minSamples, psiAlert, ksAlpha } = this.o;
    const quantities: Record<string, QuantityStatus> = {};
    const notInReference: Record<string, UnreferencedQuantity> = {};
    const numeric = new Set([...Object.keys(reference.values), ...INPUT_QUANTITIES]);
    for (const q of numeric) {
      const values = observations.map((r) => numericValue(r, q)).filter((v): v is number => v !== undefined);
      if (values.length < minSamples) continue;
      const ref = reference.values[q];
      if (!ref?.length) {
        notInReference[q] = { reason: reference.unavailable?.[q] ?? "not available in the reference", n: values.length, summary: { labels: ["min", "25%", "median", "75%", "max"], values: quartiles(values) } };
        continue;
      }
      const s = shift(ref, values);
      const ksCrit = ksCritical(ref.length, values.length, ksAlpha);
      quantities[q] = { kind: "numeric", ...s, ksCritical: ksCrit, alert: s.psi > psiAlert && s.ks! > ksCrit };
    }
    for (const q of CATEGORICAL_QUANTITIES) {
      const values = observations.map((r) => categoricalValues(r)[q]).filter((v): v is string => v !== undefined);
      if (values.length < minSamples) continue;
      const ref = reference.categories?.[q];
      if (!ref?.length) {
        const s = categoricalShift([], values);
        notInReference[q] = { reason: reference.unavailable?.[q] ?? "not available in the reference", n: values.length, summary: { labels: s.bins.labels, values: s.bins.recent } };
        continue;
      }
      const s = categoricalShift(ref, values);
      quantities[q] = { kind: "categorical", ...s, alert: s.psi > psiAlert && s.pValue! < ksAlpha };
    }
    const gated = observations.filter((r) => r.gate !== undefined);
    const gateFailures: Record<string, number> = {};
    for (const r of gated) if (r.gate !== "passed") gateFailures[r.gate!] = (gateFailures[r.gate!] ?? 0) + 1 / gated.length;
    return { observed: n, gateFailureRate: gated.length ? gated.filter((r) => r.gate !== "passed").length / gated.length : null, gateFailures, quantities, notInReference };
  }

  status(): DriftStatus {
    const window = this.compare(this.recent);
    const days = [...this.byDay].sort(([a], [b]) => a.localeCompare(b)).map(([day, obs]): DriftDay => {
      const c = this.compare(obs);
      return { day, observed: c.observed, gateFailureRate: c.gateFailureRate, gateFailures: c.gateFailures, quantities: Object.fromEntries(Object.entries(c.quantities).map(([q, s]) => [q, { psi: s.psi, ...(s.ks !== undefined && { ks: s.ks }), ...(s.pValue !== undefined && { pValue: s.pValue }), n: s.n, alert: s.alert }])) };
    });
    return {
      reference: this.o.reference.source,
      window: this.o.window,
      threshold: this.o.psiAlert,
      ksAlpha: this.o.ksAlpha,
      minSamples: this.o.minSamples,
      ...window,
      days,
      alerts: Object.entries(window.quantities).filter(([, s]) => s.alert).map(([q, s]) => alertText(q, s, this.o.psiAlert, this.o.ksAlpha)),
    };
  }

  private update(): void {
    const st = this.compare(this.recent);
    if (st.gateFailureRate !== null) this.gateGauge?.set(st.gateFailureRate);
    this.gateCheckGauge?.reset();
    for (const [check, share] of Object.entries(st.gateFailures)) this.gateCheckGauge?.set({ check }, share);
    for (const [q, s] of Object.entries(st.quantities)) {
      this.psiGauge?.set({ quantity: q }, s.psi);
      if (s.ks !== undefined) this.ksGauge?.set({ quantity: q }, s.ks);
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

function alertText(q: string, s: QuantityStatus, psiAlert: number, ksAlpha: number): string {
  const ks = s.ks !== undefined ? ` and KS ${s.ks.toFixed(3)} > ${s.ksCritical!.toFixed(3)} (alpha ${ksAlpha})` : ` and chi-square p ${s.pValue!.toPrecision(2)} < ${ksAlpha}`;
  return `${q}: PSI ${s.psi.toFixed(3)} > ${psiAlert}${ks} over the last ${s.n} studies`;
}
