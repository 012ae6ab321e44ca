import type { Logger } from "pino";
import { destinationName, type Destination, type ServiceConfig } from "../config/service.ts";
import type { ExportQueue, NotificationOutbox } from "../store/roles.ts";
import type { ServiceMetrics } from "../worklist/metrics.ts";
import { cStoreFiles, stowFiles, type SendOutcome } from "./dimse.ts";
import { RetryLoop } from "./retry-loop.ts";

export { destinationName };

export interface ExporterOptions {
  store: ExportQueue;
  config: ServiceConfig;
  logger: Logger;
  metrics?: ServiceMetrics;
  /** Required notifications (src/notify) hold a study in "done" until they are delivered too. */
  notifications?: Pick<NotificationOutbox, "undeliveredRequiredNotifications">;
}

/**
 * Sends the result objects of "done" studies to every destination and marks a study "exported"
 * only when every object has a success status from every destination. Failed sends are retried
 * with exponential backoff (initial × 2^attempt, capped), for as long as it takes; the schedule is
 * in the store, so it survives restarts. In a cluster each study is sent by one node at a time
 * (claimExport); if two ever overlap, the objects' derived UIDs make the second send a no-op.
 */
export class Exporter {
  private readonly destinations: Destination[];
  private readonly loop = new RetryLoop(
    () => this.pass(),
    (err) => this.opts.logger.error({ err: err.message }, "export pass failed"),
  );

  constructor(private readonly opts: ExporterOptions) {
    this.destinations = opts.config.export.destinations;
  }

  get destinationNames(): string[] {
    return this.destinations.map(destinationName);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Look for work now (after a study is done). */
  kick(): void {
    this.loop.kick();
  }

  /** One pass over the "done" studies; returns when the next retry is due. */
  private async pass(): Promise<number | undefined> {
    let nextDue = Infinity;
    for (const uid of await this.opts.store.studiesToExport()) {
      if (!this.loop.active) break;
      const { nextAt } = await this.opts.store.exportSchedule(uid);
      if (nextAt > Date.now()) {
        nextDue = Math.min(nextDue, nextAt);
        continue;
      }
      // Another node is sending this study's objects; look again soon in case that node dies.
      if (!(await this.opts.store.claimExport(uid))) {
        nextDue = Math.min(nextDue, Date.now() + 1000);
        continue;
      }
      try {
        const retryAt = await this.exportStudy(uid);
        if (retryAt !== undefined) nextDue = Math.min(nextDue, retryAt);
      } finally {
        await this.opts.store.releaseExport(uid);
      }
    }
    return nextDue === Infinity ? undefined : nextDue;
  }

  /** One attempt for one study; returns when to try again, or undefined when it is exported (or has no destinations). */
  async exportStudy(uid: string): Promise<number | undefined> {
    const { store, config, logger, metrics } = this.opts;
    if (this.destinations.length === 0) return undefined; // results stay "done": nowhere to send
    const errors: string[] = [];
    for (const dest of this.destinations) {
      const name = destinationName(dest);
      const pending = await store.pendingExports(uid, name);
      if (pending.length === 0) continue;
      const paths = pending.map((o) => o.path);
      let outcomes: SendOutcome[];
      try {
        if (dest.kind === "stow") outcomes = await stowFiles(dest, paths, config.export.timeoutSeconds, pending.map((o) => o.sopInstanceUid));
        else outcomes = await cStoreFiles(dest, dest.callingAeTitle ?? config.dicom.aeTitle, paths, config.export.timeoutSeconds);
      } catch (err) {
        // Before anything was sent (a result file or a TLS file unreadable): a failed attempt of this
        // study like any other, recorded per object and retried, instead of aborting the whole pass.
        outcomes = paths.map((path) => ({ path, ok: false, detail: `cannot send: ${(err as Error).message}` }));
      }
      for (const [k, o] of outcomes.entries()) {
        const out = pending[k]!;
        if (o.ok) {
          await store.markExported(out.sopInstanceUid, name);
          metrics?.exportsSucceeded.inc({ destination: name });
        } else {
          await store.markExportFailed(out.sopInstanceUid, name, o.detail);
          metrics?.exportFailures.inc({ destination: name });
          errors.push(`${name}: ${o.detail}`);
        }
      }
    }
    if (errors.length === 0) {
      const left = await Promise.all(this.destinations.map((d) => store.pendingExports(uid, destinationName(d))));
      const unnotified = (await this.opts.notifications?.undeliveredRequiredNotifications(uid)) ?? 0;
      // With notifications still owed, the notifier kicks the exporter again once they are delivered.
      if (left.every((p) => p.length === 0) && unnotified === 0 && (await store.markStudyExported(uid))) logger.info({ study: uid }, "study exported");
      return undefined;
    }
    const { attempts } = await store.exportSchedule(uid);
    const delay = Math.min(config.export.retryMaxSeconds, config.export.retryInitialSeconds * 2 ** attempts) * 1000;
    const nextAt = Date.now() + delay;
    const reason = `export failed (attempt ${attempts + 1}, next in ${Math.round(delay / 1000)} s): ${[...new Set(errors)].join("; ")}`.slice(0, 500);
    await store.setExportSchedule(uid, nextAt, attempts + 1, reason);
    logger.warn({ study: uid, attempt: attempts + 1, retryInMs: delay, errors: [...new Set(errors)] }, "export failed; will retry");
    return nextAt;
  }
}
