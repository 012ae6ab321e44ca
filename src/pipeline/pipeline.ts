import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { ServiceConfig } from "../config/service.ts";
import { readDicom } from "../dicom/read.ts";
import { presentationFromDicom } from "../image/presentation.ts";
import { inputProperties } from "../drift/input.ts";
import type { DriftObservation, InputProperties } from "../drift/monitor.ts";
import type { GateOutcome } from "../gate/gate.ts";
import { NOT_ANALYSED } from "../gate/not-analysed.ts";
import { imageStatistics } from "../gate/statistics.ts";
import type { PresentationImage } from "../image/presentation.ts";
import type { Classifier, InferenceResult } from "../inference/classifier.ts";
import { selectStudy } from "../intake/selection.ts";
import type { QuarantineLog, StudyQueue } from "../store/roles.ts";
import type { InstanceRecord, NewNotification, OutputRecord } from "../store/types.ts";
import { deriveResultUids } from "../results/input.ts";
import type { SourceReference } from "../results/source.ts";
import { SECONDARY_CAPTURE_IMAGE_STORAGE } from "../results/sc/capture.ts";
import { COMPREHENSIVE_3D_SR_STORAGE } from "../results/index.ts";
import { PARAMETRIC_MAP_STORAGE } from "../results/pm/map.ts";
import { mappedFindings } from "../results/pm/selection.ts";
import { writeResultObjects } from "../results/write.ts";
import type { ServiceMetrics } from "../worklist/metrics.ts";
import { writeHeatmapPng } from "./heatmap-png.ts";

export interface PipelineOptions {
  store: StudyQueue & QuarantineLog;
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
  /** The notifications (outbox rows) results need, recorded with them (src/notify). */
  notificationsFor?: (findings: InferenceResult["findings"]) => NewNotification[];
  /** A study reached "done" (results on disk and recorded). */
  onDone?: (studyUid: string) => void;
  /** Delays (ms) before asking the store again to record a failure it refused; the last one repeats. */
  failureRetryMs?: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Study assembly and the bounded worker pool. Assembly moves a "received" study that has been
 * stable for `intake.stableAgeSeconds` to "queued" (or "rejected" with every series' reason); up
 * to `pipeline.concurrency` workers each claim a queued study (under a lease of this node, renewed
 * while it works) through decode → infer → SR + SC → heatmaps → "done". All state is in the store:
 * after a crash, "processing" studies go back to the queue and are redone, with the same output
 * UIDs; in a cluster, another node takes over the studies of a node whose leases expired.
 */
export class Pipeline {
  private running = false;
  private active = 0;
  private timer?: NodeJS.Timeout;
  private stepping?: Promise<void>;
  private filling = false;
  private lastRequeue = 0;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly opts: PipelineOptions) {}

  private get leaseMs(): number {
    return this.opts.config.store.leaseSeconds * 1000;
  }

  async start(): Promise<void> {
    const requeued = await this.opts.store.requeueAbandoned({ ownLeases: true });
    if (requeued.length) this.opts.logger.info({ studies: requeued.length }, "resuming studies interrupted by a restart");
    this.running = true;
    this.tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.stepping;
    await Promise.allSettled([...this.inflight]);
  }

  /** Run assembly and fill free workers now (also runs every 250 ms). */
  tick(): void {
    if (!this.running || this.stepping) return;
    clearTimeout(this.timer);
    this.stepping = this.step().finally(() => {
      this.stepping = undefined;
      if (this.running) this.timer = setTimeout(() => this.tick(), 250);
    });
  }

  private async step(): Promise<void> {
    try {
      await this.requeueExpired();
      await this.assemble();
      await this.fill();
    } catch (err) {
      this.opts.logger.error({ err: (err as Error).message }, "pipeline tick failed");
    }
  }

  /** Studies of nodes that stopped renewing their leases (cluster mode) go back to the queue. */
  private async requeueExpired(): Promise<void> {
    if (Date.now() - this.lastRequeue < Math.min(5000, this.leaseMs / 4)) return;
    this.lastRequeue = Date.now();
    const taken = await this.opts.store.requeueAbandoned();
    if (taken.length) this.opts.logger.warn({ studies: taken }, "leases of another node expired: studies queued again");
  }

  /** Studies the listener just completed in one association with a single image (intake.singleImageImmediately). */
  associationEnded(studies: Map<string, number>): void {
    if (!this.opts.config.intake.singleImageImmediately) return;
    void (async () => {
      for (const [uid, n] of studies) {
        if (n === 1 && (await this.opts.store.instanceCount(uid)) === 1) await this.assembleStudy(uid);
      }
      await this.updateQueueDepth();
      await this.fill();
    })().catch((err: Error) => this.opts.logger.error({ err: err.message }, "assembly after an association failed"));
  }

  private async assemble(): Promise<void> {
    const stableBefore = Date.now() - this.opts.config.intake.stableAgeSeconds * 1000;
    const stable = await this.opts.store.stableStudies(stableBefore);
    for (const uid of stable) await this.assembleStudy(uid);
    if (stable.length) await this.updateQueueDepth();
  }

  /** Which of these instances are result objects this plugin wrote (routed back by a PACS). */
  private ownOutputUids(instances: InstanceRecord[]): Promise<Set<string>> {
    return this.opts.store.ownOutputs(instances.map((i) => i.sopInstanceUid));
  }

  private async assembleStudy(uid: string): Promise<void> {
    const { store, config, logger } = this.opts;
    const instances = await store.instances(uid);
    const selection = selectStudy(instances, config.selection, await this.ownOutputUids(instances));
    await store.setSeriesDecisions(uid, selection.series);
    if (selection.chosen) {
      if (await store.transition(uid, "queued", { from: ["received"], reason: null })) logger.info({ study: uid }, "study queued");
    } else if (await store.transition(uid, "rejected", { from: ["received"], reason: selection.reason })) {
      logger.info({ study: uid, reason: selection.reason }, "study rejected");
    }
  }

  private async updateQueueDepth(): Promise<void> {
    this.opts.metrics?.queueDepth.set(await this.opts.store.countInState("queued"));
  }

  private async fill(): Promise<void> {
    if (this.filling) return; // one claimer at a time, so `active` never overshoots the concurrency
    this.filling = true;
    try {
      while (this.running && this.active < this.opts.config.pipeline.concurrency) {
        const next = await this.opts.store.claimNext();
        if (!next) break;
        this.active++;
        await this.updateQueueDepth();
        // process() keeps its own failures of decode → heatmaps; anything else (the store, selection,
        // quarantine bookkeeping) must not leave the study "processing" without a reason, nor reject unhandled.
        const p = this.process(next)
          .catch((err: Error) => this.fail(next, `processing failed: ${err.message}`))
          .finally(() => {
            this.active--;
            this.inflight.delete(p);
            if (this.running) setImmediate(() => void this.fill().catch((err: Error) => this.opts.logger.error({ err: err.message }, "claiming a study failed")));
          });
        this.inflight.add(p);
      }
    } finally {
      this.filling = false;
    }
  }

  /**
   * Records a study's failure. A store that refuses the write (disk full, database unreachable) is
   * asked again until it takes it: the study must not stay "processing" with no worker. Only when
   * the service stops is it left there, and the next start (or another node) queues it again.
   */
  private async fail(uid: string, reason: string): Promise<void> {
    const { store, logger } = this.opts;
    const delays = this.opts.failureRetryMs ?? [500, 1000, 2000, 5000, 10_000];
    reason = reason.slice(0, 1000);
    logger.error({ study: uid, reason }, "study failed");
    for (let attempt = 0; ; attempt++) {
      try {
        await store.transition(uid, "failed", { from: ["processing"], reason });
        if (attempt > 0) logger.info({ study: uid, attempts: attempt + 1 }, "failure of the study recorded");
        return;
      } catch (err) {
        if (!this.running) {
          logger.error({ study: uid, err: (err as Error).message }, "cannot record the failure of a study; it is queued again at the next start");
          return;
        }
        const delay = delays[Math.min(attempt, delays.length - 1)]!;
        logger.error({ study: uid, err: (err as Error).message, retryInMs: delay }, "cannot record the failure of a study; retrying");
        await sleep(delay);
      }
    }
  }

  private async process(uid: string): Promise<void> {
    const instances = await this.opts.store.instances(uid);
    // The lease is renewed while the worker runs; another node takes the study only once it lapses.
    const renew = setInterval(() => {
      this.opts.store.renewLease(uid).then(
        (ours) => ours || this.opts.logger.warn({ study: uid }, "lease of a study in progress lost"),
        (err: Error) => this.opts.logger.warn({ study: uid, err: err.message }, "cannot renew the lease of a study"),
      );
    }, Math.max(50, this.leaseMs / 3));
    try {
      await this.processInstances(uid, instances);
    } finally {
      clearInterval(renew);
      // Runs before the exporter's pass (kicked by onDone on a timer), so stale results are not sent.
      await this.reassembleIfChanged(uid, instances);
    }
  }

  /**
   * addInstance leaves a "processing" study in its state, so an instance that arrived (or was
   * replaced with new bytes) while a worker had it would never be considered: once the worker is
   * finished, such a study goes back to assembly (and is processed again if its chosen image changed).
   */
  private async reassembleIfChanged(uid: string, seen: InstanceRecord[]): Promise<void> {
    const key = (list: InstanceRecord[]) => list.map((i) => `${i.sopInstanceUid}\0${i.sha256}`).sort().join("\n");
    if (key(await this.opts.store.instances(uid)) === key(seen)) return;
    if (await this.opts.store.transition(uid, "received", { from: ["done", "failed", "rejected"], reason: null })) {
      this.opts.logger.info({ study: uid }, "instances arrived while the study was processed; assembled again");
    }
  }

  /**
   * The gate's verdict on the image the model would see: a failed check means no findings at all
   * (rejected with "not analysed: <reason>", so the worklist lists it for review), not triage.
   */
  private async notAnalysed(uid: string, outcome: GateOutcome, input: InputProperties): Promise<void> {
    this.opts.drift?.observe({ statistics: outcome.statistics, input, gate: outcome.check });
    await this.opts.store.transition(uid, "rejected", { from: ["processing"], reason: `${NOT_ANALYSED}${outcome.reason}` });
    this.opts.metrics?.gateFailures.inc({ check: outcome.check });
    this.opts.logger.warn({ study: uid, check: outcome.check, reason: outcome.reason, scores: outcome.scores }, "study not analysed: its image failed the gate");
  }

  /**
   * The reference a new SR gives to the study's previous one (Predecessor Documents Sequence), so the
   * PACS can tell which of two SRs for one image is current. Its Series Instance UID is read from its
   * file; an unreadable file leaves the new SR without the reference (logged), not the study without results.
   */
  private async predecessorReference(uid: string, srUid: string): Promise<SourceReference | undefined> {
    const recorded = (await this.opts.store.outputs(uid)).find((o) => o.sopInstanceUid === srUid);
    try {
      if (!recorded) throw new Error("not among the study's recorded outputs");
      const ds = readDicom(recorded.path, { withPixelData: false }).dataset;
      if (ds.SOPInstanceUID !== srUid) throw new Error(`${recorded.path} holds SOP Instance ${String(ds.SOPInstanceUID)}`);
      return { studyInstanceUid: uid, seriesInstanceUid: String(ds.SeriesInstanceUID), sopClassUid: recorded.sopClassUid, sopInstanceUid: srUid };
    } catch (err) {
      this.opts.logger.warn({ study: uid, sr: srUid, err: (err as Error).message }, "the SR being replaced cannot be read; the new SR does not name it");
      return undefined;
    }
  }

  private async processInstances(uid: string, instances: InstanceRecord[]): Promise<void> {
    const { store, config, classifier, logger, metrics } = this.opts;
    const started = Date.now();
    const selection = selectStudy(instances, config.selection, await this.ownOutputUids(instances));
    const chosen = selection.chosen;
    if (!chosen) {
      await store.transition(uid, "rejected", { from: ["processing"], reason: selection.reason });
      return;
    }
    const card = classifier.card;
    // Same image bytes + same model ⇒ same results: nothing to redo, nothing new to send.
    const processedKey = createHash("sha256").update(`${chosen.sopInstanceUid}\0${chosen.sha256}\0${card.deviceUid}`).digest("hex");
    if ((await store.processedKey(uid)) === processedKey && (await store.get(uid))?.outputs?.sr) {
      await store.transition(uid, "done", { from: ["processing"], reason: null });
      logger.info({ study: uid }, "study unchanged since its last results; not processed again");
      this.opts.onDone?.(uid);
      return;
    }
    let stage = "decode";
    try {
      const file = readDicom(chosen.path);
      const image = await presentationFromDicom(file);
      const input = inputProperties(chosen.header, file.dataset);
      stage = "gate";
      const gated = await this.opts.gate?.check(image);
      if (gated && !gated.pass) return this.notAnalysed(uid, gated, input);
      stage = "inference";
      const result = await classifier.infer(image);
      this.opts.drift?.observe({ statistics: gated?.statistics ?? imageStatistics(image), input, probabilities: Object.fromEntries(result.findings.map((f) => [f.label, f.probability])), ...(gated && { gate: "passed" as const }) });
      metrics?.inferenceDuration.observe(result.inferenceMs / 1000);
      stage = "results";
      const { PixelData: _pixels, ...dataset } = file.dataset;
      // The content hash is part of the derivation: a re-sent image with new pixels under the same UID gets new result UIDs.
      // So is the SR these results replace (the unchanged case returned above): a replacing SR is a new document even
      // for pixels seen before (A → B → A), and a resumed run (the store still names the same SR) makes the same UIDs.
      const supersedes = (await store.get(uid))?.outputs?.sr;
      const uids = deriveResultUids([chosen.sopInstanceUid, `sha256:${chosen.sha256}`, ...(supersedes ? [`replaces:${supersedes}`] : [])], card.deviceUid);
      const outDir = join(this.opts.outputsDir, uid);
      const predecessor = supersedes && (await this.predecessorReference(uid, supersedes));
      // Named by the SR's UID: new results never overwrite the files of the ones they replace.
      const written = writeResultObjects({ dataset, image, result, outDir, basename: uids.sopInstanceUidSr, uids, mapSelection: config.pipeline.parametricMaps, ...(predecessor && { predecessor }) });
      stage = "heatmaps";
      // the worklist's PNGs: the positives, else the top finding, whatever the Parametric Map setting
      const labels = mappedFindings(result, "positive").map((f) => f.label);
      const heatmaps: { label: string; path: string }[] = [];
      for (const h of result.heatmaps.filter((h) => labels.includes(h.label))) {
        const path = join(this.opts.heatmapsDir, uid, `${h.label.replace(/[^A-Za-z0-9_-]/g, "_")}.png`);
        await writeHeatmapPng(h, image, config.pipeline.heatmapMaxSize, path);
        heatmaps.push({ label: h.label, path });
      }
      const outputs: OutputRecord[] = [
        { sopInstanceUid: written.sr.sopInstanceUid, studyInstanceUid: uid, kind: "sr", sopClassUid: COMPREHENSIVE_3D_SR_STORAGE /* the class buildStructuredReport writes */, path: written.sr.path },
        ...written.sc.map((s) => ({ sopInstanceUid: s.sopInstanceUid, studyInstanceUid: uid, kind: "sc" as const, sopClassUid: SECONDARY_CAPTURE_IMAGE_STORAGE, path: s.path })),
        ...written.pm.map((m) => ({ sopInstanceUid: m.sopInstanceUid, studyInstanceUid: uid, kind: "pm" as const, sopClassUid: PARAMETRIC_MAP_STORAGE, path: m.path })),
      ];
      const recorded = await store.recordResults(uid, {
        processedKey,
        findings: result.findings,
        heatmaps,
        model: { name: card.name, version: card.version, deviceUid: card.deviceUid, training: card.training.summary },
        outputs,
        destinations: this.opts.destinations,
        ...(supersedes && { supersedes }),
        notifications: this.opts.notificationsFor?.(result.findings) ?? [],
      });
      if (!recorded) {
        // Another node took the study over after this node's lease lapsed: its results count, these are dropped
        // (same inputs and model, so the same UIDs: nothing is sent twice).
        logger.warn({ study: uid }, "study no longer leased by this node; its results were not recorded");
        return;
      }
      const rec = await store.get(uid);
      if (rec) metrics?.studyLatency.observe((Date.now() - Date.parse(rec.receivedAt)) / 1000);
      logger.info({ study: uid, ms: Date.now() - started, sr: written.sr.sopInstanceUid, sc: written.sc.length, pm: written.pm.length }, "study done");
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
          await store.addQuarantine(kept, reason, uid);
        } catch (copyErr) {
          await store
            .addQuarantine(chosen.path, `${reason} (not copied to the quarantine: ${(copyErr as Error).message})`, uid)
            .catch((err: Error) => logger.error({ study: uid, err: err.message }, "cannot record the quarantined input"));
        }
      }
      await this.fail(uid, reason);
    }
  }
}
