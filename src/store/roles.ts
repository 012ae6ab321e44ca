import type {
  ExportRecord, InstanceOutcome, NotificationRecord, NotificationState, InstanceRecord, NewInstance, OutputRecord, QuarantineEntry, SeriesDecision,
  StudyRecord, StudyResults, StudyState,
} from "./types.ts";

/**
 * The store by role: each part of the service depends on the one it needs, never on the database.
 * Every method is async so that SQLite (embedded, the default) and PostgreSQL (several nodes) are
 * interchangeable behind them; the contract tests run one suite against both.
 */

/** Instances that could not be taken in, kept with the reason (listener, recovery, pipeline). */
export interface QuarantineLog {
  addQuarantine(path: string, reason: string, studyUid?: string, now?: Date): Promise<void>;
  quarantined(): Promise<QuarantineEntry[]>;
  isQuarantined(path: string): Promise<boolean>;
}

/** What the DICOM listener and spool recovery record. */
export interface IntakeStore extends QuarantineLog {
  /**
   * Records a received instance (its file is already durable). A new instance of a finished study
   * re-opens it; an identical copy (same SOP Instance UID and bytes) changes nothing.
   */
  addInstance(inst: NewInstance, now?: Date): Promise<InstanceOutcome>;
  /** Whether a spool file is already recorded as an instance (recovery skips it). */
  hasInstanceAt(path: string): Promise<boolean>;
}

export interface TransitionOptions {
  /** Compare-and-set: only when the study is in one of these (each must be allowed to move to the target). */
  from?: StudyState[];
  /** The study's reason after the change (null clears it; undefined keeps it). */
  reason?: string | null;
  now?: Date;
}

/** The pipeline's view: assembly, claiming studies under a lease, state changes and results. */
export interface StudyQueue {
  /** This node's name, recorded as the owner of its leases and on the studies it processes. */
  readonly nodeId: string;
  get(studyUid: string): Promise<StudyRecord | undefined>;
  instances(studyUid: string): Promise<InstanceRecord[]>;
  instanceCount(studyUid: string): Promise<number>;
  /** Studies in "received" whose newest instance is older than `stableBefore` (epoch ms). */
  stableStudies(stableBefore: number): Promise<string[]>;
  countInState(state: StudyState): Promise<number>;
  /** Which of these SOP Instance UIDs are result objects this service wrote (a PACS may route them back). */
  ownOutputs(sopInstanceUids: string[]): Promise<Set<string>>;
  setSeriesDecisions(studyUid: string, decisions: SeriesDecision[]): Promise<void>;
  seriesDecisions(studyUid: string): Promise<SeriesDecision[]>;
  /**
   * Moves a study to `state` when the state machine allows it (and it is in `from`, if given);
   * false when it was not. A study under another node's lease is never moved out of "processing".
   */
  transition(studyUid: string, state: StudyState, opts?: TransitionOptions): Promise<boolean>;
  /** Takes the oldest queued study into "processing" under a lease of this node; undefined when none is free. */
  claimNext(now?: Date): Promise<string | undefined>;
  /** Extends this node's lease on a study it processes; false when the lease is no longer ours. */
  renewLease(studyUid: string, now?: Date): Promise<boolean>;
  /**
   * "processing" studies without a live worker go back to "queued": those whose lease another node
   * let expire and, with `ownLeases` (at start), those this node held before it restarted.
   */
  requeueAbandoned(opts?: { ownLeases?: boolean; now?: Date }): Promise<string[]>;
  /** The key of the last successful processing (inputs + model); equal key = nothing new to do. */
  processedKey(studyUid: string): Promise<string | undefined>;
  /**
   * Results, the exports they need and "done", in one transaction; false (nothing written) when
   * the study is no longer "processing" under this node's lease.
   */
  recordResults(studyUid: string, results: StudyResults, now?: Date): Promise<boolean>;
  /** The study's current result objects (e.g. the SR that new results will replace). */
  outputs(studyUid: string): Promise<OutputRecord[]>;
}

/** The exporter's view: result objects per destination and the retry schedule of each study. */
export interface ExportQueue {
  /** Studies whose results wait to be sent ("done"). */
  studiesToExport(): Promise<string[]>;
  /** The current outputs of a study not yet sent to `destination`. */
  pendingExports(studyUid: string, destination: string): Promise<OutputRecord[]>;
  markExported(outputUid: string, destination: string, now?: Date): Promise<void>;
  markExportFailed(outputUid: string, destination: string, error: string): Promise<void>;
  exports(studyUid: string): Promise<ExportRecord[]>;
  /** When the next attempt of a "done" study is due (epoch ms) and how many failed so far. */
  exportSchedule(studyUid: string): Promise<{ nextAt: number; attempts: number }>;
  setExportSchedule(studyUid: string, nextAt: number, attempts: number, lastError?: string): Promise<void>;
  /**
   * Takes the sending of a "done" study for this node (several nodes run exporters): false while
   * another node holds it and its claim has not lapsed. Released by releaseExport.
   */
  claimExport(studyUid: string, now?: Date): Promise<boolean>;
  releaseExport(studyUid: string): Promise<void>;
  /** "done" → "exported" once every object reached every destination. */
  markStudyExported(studyUid: string, now?: Date): Promise<boolean>;
}

/**
 * The notifier's view: the outbox of notifications (HL7, FHIR, webhooks) that recordResults fills in
 * the same transaction as the results. A notification is claimed before it is sent (several nodes
 * may share the store), and is delivered only on a positive acknowledgement.
 */
export interface NotificationOutbox {
  /**
   * Pending notifications due at `now` (epoch ms), oldest first, each claimed for `claimMs` (its
   * nextAt moves on, so that no other sender takes it meanwhile; a sender that dies lets it fall due again).
   */
  claimDueNotifications(now: number, claimMs: number, limit?: number): Promise<NotificationRecord[]>;
  /** The earliest nextAt of a pending notification (undefined: none pending). */
  nextNotificationAt(): Promise<number | undefined>;
  notifications(studyUid: string): Promise<NotificationRecord[]>;
  /** Delivered with the acknowledgement; false when the notification was replaced by newer results meanwhile. */
  markNotificationDelivered(studyUid: string, destination: string, resultsKey: string, ack: string, now?: Date): Promise<boolean>;
  /** A failed attempt: retried at `retryAt` (epoch ms), or given up ("failed") when undefined. */
  markNotificationAttemptFailed(studyUid: string, destination: string, resultsKey: string, error: string, retryAt: number | undefined): Promise<void>;
  /** Required notifications of the study not yet delivered (the study is not "exported" while any are). */
  undeliveredRequiredNotifications(studyUid: string): Promise<number>;
  /** Notifications per destination and state (metrics). */
  notificationCounts(): Promise<{ destination: string; state: NotificationState; count: number }[]>;
}

/** What the worklist reads. */
export interface WorklistReader {
  list(): Promise<StudyRecord[]>;
  get(studyUid: string): Promise<StudyRecord | undefined>;
  /** Called after every change of a study (new, state change, results), on every node of a cluster. */
  onChange(listener: (rec: StudyRecord) => void): () => void;
  /** Studies per state (health checks and metrics ask often: no study records are built). */
  countsByState(): Promise<Record<StudyState, number>>;
}

/** Everything, as the service wires it (and as `cxr status` and tests read it). */
export interface Store extends IntakeStore, StudyQueue, ExportQueue, NotificationOutbox, WorklistReader {
  readonly kind: "sqlite" | "postgres";
  close(): Promise<void>;
}
