import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { ServiceConfig } from "../config/service.ts";
import { readDicom } from "../dicom/read.ts";
import { presentationFromDicom } from "../image/presentation.ts";
import type { DriftObservation } from "../drift/monitor.ts";
import type { GateOutcome } from "../gate/gate.ts";
import { imageStatistics } from "../gate/statistics.ts";
import type { PresentationImage } from "../image/presentation.ts";
import type { Classifier } from "../inference/classifier.ts";
import { selectStudy } from "../intake/selection.ts";
import type { InstanceRecord, OutputRecord, SqliteStudyStore } from "../intake/store.ts";
import { deriveResultUids } from "../results/input.ts";
import { SECONDARY_CAPTURE_IMAGE_STORAGE } from "../results/sc/capture.ts";
import { COMPREHENSIVE_3D_SR_STORAGE } from "../results/index.ts";
import { writeResultObjects } from "../results/write.ts";
import type { ServiceMetrics } from "../worklist/metrics.ts";
import { writeHeatmapPng } from "./heatmap-png.ts";

export interface PipelineOptions {
  store: SqliteStudyStore;
  config: ServiceConfig;
  classifier: Classifier;
  /** The image-content gate; without it every decoded image is inferred. */
  gate?: { check(img: PresentationImage): Promise<GateOutcome> };
  /** Drift monitoring: told what every decoded image looked like and what the model said. */
  drift?: { observe(o: DriftObservation): void };
  logger: Logger;
  metrics?: ServiceMetrics;
  /** Result objects: <outputsDir>/<study>/... */
  outputsDir: string;
  /** Worklist heatmap PNGs: <heatmapsDir>/<study>/<label>.png */
  heatmapsDir: string;
  quarantineDir: string;
  destinations: string[];
  /** A study reached "done" (results on disk and recorded). */
  onDone?: (studyUid: string) => void;
}

/**
 * Study assembly and the bounded worker pool. Assembly moves a "received" study that has been
 * stable for `intake.stableAgeSeconds` to "queued" (or "rejected" with every series' reason); up
 * to `pipeline.concurrency` workers each take a queued study (compare-and-set in the store) through
 * decode → infer → SR + SC → heatmaps → "done". All state is in the store: after a crash,
 * "processing" studies go back to the queue and are redone, with the same output UIDs.
 */
export class Pipeline {
  private running = false;
  private active = 0;
  private timer?: NodeJS.Timeout;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly opts: PipelineOptions) {}

  start(): void {
    const requeued = this.opts.store.requeueInterrupted();
    if (requeued.length) this.opts.logger.info({ studies: requeued.length }, "resuming studies interrupted by a restart");
    this.running = true;
    this.tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.inflight]);
  }

  /** Run assembly and fill free workers now (also runs every 250 ms). */
  tick(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    try {
      this.assemble();
      this.fill();
    } catch (err) {
      this.opts.logger.error({ err: (err as Error).message }, "pipeline tick failed");
    }
    this.timer = setTimeout(() => this.tick(), 250);
  }

  /** Studies the listener just completed in one association with a single image (intake.singleImageImmediately). */
  associationEnded(studies: Map<string, number>): void {
    if (!this.opts.config.intake.singleImageImmediately) return;
    for (const [uid, n] of studies) {
      if (n === 1 && this.opts.store.instanceCount(uid) === 1) this.assembleStudy(uid);
    }
    this.updateQueueDepth();
    this.fill();
  }

  private assemble(): void {
    const stableBefore = Date.now() - this.opts.config.intake.stableAgeSeconds * 1000;
    const stable = this.opts.store.stableStudies(stableBefore);
    for (const uid of stable) this.assembleStudy(uid);
    if (stable.length) this.updateQueueDepth();
  }

  /** Which of these instances are result objects this plugin wrote (routed back by a PACS). */
  private ownOutputUids(instances: InstanceRecord[]): Set<string> {
    const isOutput = this.opts.store.db.prepare("SELECT 1 FROM outputs WHERE sop_uid = ?");
    return new Set(instances.filter((i) => isOutput.get(i.sopInstanceUid)).map((i) => i.sopInstanceUid));
  }

  private assembleStudy(uid: string): void {
    const { store, config, logger } = this.opts;
    const instances = store.instances(uid);
    const selection = selectStudy(instances, config.selection, this.ownOutputUids(instances));
    store.setSeriesDecisions(uid, selection.series);
    if (selection.chosen) {
      if (store.transition(uid, "queued", { from: ["received"], reason: null })) logger.info({ study: uid }, "study queued");
    } else if (store.transition(uid, "rejected", { from: ["received"], reason: selection.reason })) {
      logger.info({ study: uid, reason: selection.reason }, "study rejected");
    }
  }

  private updateQueueDepth(): void {
    this.opts.metrics?.queueDepth.set(this.opts.store.studiesInState("queued").length);
  }

  private fill(): void {
    while (this.running && this.active < this.opts.config.pipeline.concurrency) {
      const next = this.opts.store.studiesInState("queued").find((uid) => this.opts.store.transition(uid, "processing", { from: ["queued"] }));
      if (!next) break;
      this.active++;
      this.updateQueueDepth();
      // process() keeps its own failures of decode → heatmaps; anything else (the store, selection,
      // quarantine bookkeeping) must not leave the study "processing" without a reason, nor reject unhandled.
      const p = this.process(next)
        .catch((err: Error) => this.failUnexpectedly(next, err))
        .finally(() => {
          this.active--;
          this.inflight.delete(p);
          if (this.running) setImmediate(() => this.fill());
        });
      this.inflight.add(p);
    }
  }

  private failUnexpectedly(uid: string, err: Error): void {
    const reason = `processing failed: ${err.message}`.slice(0, 1000);
    this.opts.logger.error({ study: uid, err: err.message }, "study failed");
    try {
      this.opts.store.transition(uid, "failed", { from: ["processing"], reason });
    } catch (storeErr) {
      // Left in "processing": requeueInterrupted() takes it up again at the next start.
      this.opts.logger.error({ study: uid, err: (storeErr as Error).message }, "cannot record the failure of a study");
    }
  }

  private async process(uid: string): Promise<void> {
    const instances = this.opts.store.instances(uid);
    try {
      await this.processInstances(uid, instances);
    } finally {
      // Runs before the exporter's pass (kicked by onDone on a timer), so stale results are not sent.
      this.reassembleIfChanged(uid, instances);
    }
  }

  /**
   * addInstance leaves a "processing" study in its state, so an instance that arrived (or was
   * replaced with new bytes) while a worker had it would never be considered: once the worker is
   * finished, such a study goes back to assembly (and is processed again if its chosen image changed).
   */
  private reassembleIfChanged(uid: string, seen: InstanceRecord[]): void {
    const key = (list: InstanceRecord[]) => list.map((i) => `${i.sopInstanceUid}\0${i.sha256}`).sort().join("\n");
    if (key(this.opts.store.instances(uid)) === key(seen)) return;
    if (this.opts.store.transition(uid, "received", { from: ["done", "failed", "rejected"], reason: null })) {
      this.opts.logger.info({ study: uid }, "instances arrived while the study was processed; assembled again");
    }
  }

  /**
   * The gate's verdict on the image the model would see: a failed check means no findings at all
   * (rejected with "not analysed: <reason>", so the worklist lists it for review), not triage.
   */
  private notAnalysed(uid: string, outcome: GateOutcome): void {
    this.opts.drift?.observe({ statistics: outcome.statistics, gatePassed: false });
    this.opts.store.transition(uid, "rejected", { from: ["processing"], reason: `not analysed: ${outcome.reason}` });
    this.opts.metrics?.gateFailures.inc({ check: outcome.check });
    this.opts.logger.warn({ study: uid, check: outcome.check, reason: outcome.reason, scores: outcome.scores }, "study not analysed: its image failed the gate");
  }

  private async processInstances(uid: string, instances: InstanceRecord[]): Promise<void> {
    const { store, config, classifier, logger, metrics } = this.opts;
    const started = Date.now();
    const selection = selectStudy(instances, config.selection, this.ownOutputUids(instances));
    const chosen = selection.chosen;
    if (!chosen) {
      store.transition(uid, "rejected", { from: ["processing"], reason: selection.reason });
      return;
    }
    const card = classifier.card;
    // Same image bytes + same model ⇒ same results: nothing to redo, nothing new to send.
    const processedKey = createHash("sha256").update(`${chosen.sopInstanceUid}\0${chosen.sha256}\0${card.deviceUid}`).digest("hex");
    if (store.processedKey(uid) === processedKey && store.get(uid)?.outputs?.sr) {
      store.transition(uid, "done", { from: ["processing"], reason: null });
      logger.info({ study: uid }, "study unchanged since its last results; not processed again");
      this.opts.onDone?.(uid);
      return;
    }
    let stage = "decode";
    try {
      const file = readDicom(chosen.path);
      const image = await presentationFromDicom(file);
      stage = "gate";
      const gated = await this.opts.gate?.check(image);
      if (gated && !gated.pass) return this.notAnalysed(uid, gated);
      stage = "inference";
      const result = await classifier.infer(image);
      this.opts.drift?.observe({ statistics: gated?.statistics ?? imageStatistics(image), probabilities: Object.fromEntries(result.findings.map((f) => [f.label, f.probability])), gatePassed: true });
      metrics?.inferenceDuration.observe(result.inferenceMs / 1000);
      stage = "results";
      const { PixelData: _pixels, ...dataset } = file.dataset;
      // The content hash is part of the derivation: a re-sent image with new pixels under the same UID gets new result UIDs.
      const uids = deriveResultUids([chosen.sopInstanceUid, `sha256:${chosen.sha256}`], card.deviceUid);
      const outDir = join(this.opts.outputsDir, uid);
      const written = writeResultObjects({ dataset, image, result, outDir, basename: chosen.sopInstanceUid, uids });
      stage = "heatmaps";
      const positives = result.findings.filter((f) => f.positive).map((f) => f.label);
      const top = [...result.findings].sort((a, b) => b.probability - a.probability)[0]?.label;
      const labels = positives.length ? positives : top ? [top] : [];
      const heatmaps: { label: string; path: string }[] = [];
      for (const h of result.heatmaps.filter((h) => labels.includes(h.label))) {
        const path = join(this.opts.heatmapsDir, uid, `${h.label.replace(/[^A-Za-z0-9_-]/g, "_")}.png`);
        await writeHeatmapPng(h, image, config.pipeline.heatmapMaxSize, path);
        heatmaps.push({ label: h.label, path });
      }
      const outputs: OutputRecord[] = [
        { sopInstanceUid: written.sr.sopInstanceUid, studyInstanceUid: uid, kind: "sr", sopClassUid: COMPREHENSIVE_3D_SR_STORAGE /* the class buildStructuredReport writes */, path: written.sr.path },
        ...written.sc.map((s) => ({ sopInstanceUid: s.sopInstanceUid, studyInstanceUid: uid, kind: "sc" as const, sopClassUid: SECONDARY_CAPTURE_IMAGE_STORAGE, path: s.path })),
      ];
      store.recordResults(uid, {
        processedKey,
        findings: result.findings,
        heatmaps,
        model: { name: card.name, version: card.version, deviceUid: card.deviceUid, training: card.training.summary },
        outputs,
        destinations: this.opts.destinations,
      });
      metrics?.studyLatency.observe((Date.now() - Date.parse(store.get(uid)!.receivedAt)) / 1000);
      logger.info({ study: uid, ms: Date.now() - started, sr: written.sr.sopInstanceUid, sc: written.sc.length }, "study done");
      this.opts.onDone?.(uid);
    } catch (err) {
      const message = (err as Error).message;
      const reason = `${stage} failed for ${chosen.path}: ${message}`.slice(0, 1000);
      if (stage === "decode") {
        // The input itself is bad: keep a copy for inspection; the study is failed, the service goes on.
        mkdirSync(this.opts.quarantineDir, { recursive: true });
        const kept = join(this.opts.quarantineDir, `${uid}-${chosen.sopInstanceUid}.dcm`);
        try {
          copyFileSync(chosen.path, kept);
          store.addQuarantine(kept, reason, uid);
        } catch (copyErr) {
          store.addQuarantine(chosen.path, `${reason} (not copied to the quarantine: ${(copyErr as Error).message})`, uid);
        }
      }
      store.transition(uid, "failed", { from: ["processing"], reason });
      logger.error({ study: uid, stage, err: message }, "study failed");
    }
  }
}
