import type { Store, TransitionOptions } from "./roles.ts";
import type { SqlDatabase, SqlTransaction } from "./sql.ts";
import { assertTransition, canTransition, IllegalTransitionError, REOPENED_BY_NEW_INSTANCE } from "./states.ts";
import {
  STUDY_STATES, type ExportRecord, type NotificationRecord, type NotificationState, type FindingResult, type HistoryEntry, type InstanceHeader, type InstanceOutcome, type InstanceRecord,
  type NewInstance, type OutputRecord, type QuarantineEntry, type SeriesDecision, type StudyRecord, type StudyResults, type StudyState,
  type OutputKind,
} from "./types.ts";

export interface SqlStoreOptions {
  kind: Store["kind"];
  nodeId: string;
  /** How long a claim holds without renewal before another node may take the study. */
  leaseSeconds: number;
  /** Where a failing onChange listener is reported (it never breaks the write that emitted). */
  onListenerError?: (err: Error, studyUid: string) => void;
}

interface StudyRow {
  study_uid: string; state: StudyState; received_at: string; updated_at: string; reason: string | null;
  patient_name: string | null; patient_id: string | null; patient_birth_date: string | null; patient_sex: string | null; accession_number: string | null; study_description: string | null;
  findings: string | null; heatmaps: string | null; model: string | null; processed_by: string | null;
}
interface InstanceRow {
  sop_uid: string; sop_class_uid: string; study_uid: string; series_uid: string; transfer_syntax_uid: string; path: string;
  sha256: string; size: number; calling_ae: string; received_at: string; header: string;
}
interface OutputRow { sop_uid: string; study_uid: string; kind: OutputKind; sop_class_uid: string; path: string; supersedes?: string | null }
interface NotificationRow {
  study_uid: string; destination: string; results_key: string; required: number; state: NotificationState; attempts: number; next_at: number | string;
  last_error: string | null; ack: string | null; created_at: string; delivered_at: string | null; last_instance_at: number | string;
}
interface HistoryRow { study_uid: string; state: StudyState; at: string; node: string | null }

const STUDY_COLUMNS = "study_uid, state, received_at, updated_at, reason, patient_name, patient_id, patient_birth_date, patient_sex, accession_number, study_description, findings, heatmaps, model, processed_by";
const SR_FIRST = "CASE kind WHEN 'sr' THEN 0 ELSE 1 END";

/** The store's logic over either backend: the state machine, history, leases, outputs and exports. */
export class SqlStore implements Store {
  readonly kind: Store["kind"];
  readonly nodeId: string;
  private readonly leaseMs: number;
  private readonly listeners = new Set<(rec: StudyRecord) => void>();
  private closed = false;

  constructor(private readonly db: SqlDatabase, private readonly opts: SqlStoreOptions) {
    this.kind = opts.kind;
    this.nodeId = opts.nodeId;
    this.leaseMs = opts.leaseSeconds * 1000;
    db.onNotify((uid) => void this.emit(uid));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }

  // ---- changes: the one place that moves a study and appends its history ----

  /** The only writer of study_history. */
  private async appendHistory(tx: SqlTransaction, studyUid: string, state: StudyState, at: string): Promise<void> {
    await tx.run("INSERT INTO study_history (study_uid, state, at, node) VALUES (?, ?, ?, ?)", [studyUid, state, at, this.nodeId]);
    tx.notify(studyUid);
  }

  /** Moves a study whose current state the caller has read (and locked); checked against the state machine. */
  private async setState(tx: SqlTransaction, studyUid: string, from: StudyState, to: StudyState, now: Date, reason?: string | null): Promise<void> {
    assertTransition(studyUid, from, to);
    const at = now.toISOString();
    const sets = ["state = ?", "updated_at = ?"];
    const params: unknown[] = [to, at];
    if (reason !== undefined) {
      sets.push("reason = ?");
      params.push(reason);
    }
    if (to === "processing") {
      sets.push("lease_owner = ?", "lease_expires_at = ?", "processed_by = ?");
      params.push(this.nodeId, now.getTime() + this.leaseMs, this.nodeId);
    } else {
      sets.push("lease_owner = NULL", "lease_expires_at = NULL");
    }
    await tx.run(`UPDATE studies SET ${sets.join(", ")} WHERE study_uid = ?`, [...params, studyUid]);
    await this.appendHistory(tx, studyUid, to, at);
  }

  private async lockStudy(tx: SqlTransaction, studyUid: string): Promise<{ state: StudyState; lease_owner: string | null } | undefined> {
    return (await tx.query<{ state: StudyState; lease_owner: string | null }>(`SELECT state, lease_owner FROM studies WHERE study_uid = ?${this.db.forUpdate}`, [studyUid]))[0];
  }

  /** Another node holds this study: nothing here may move it. */
  private leasedElsewhere(row: { state: StudyState; lease_owner: string | null }): boolean {
    return row.state === "processing" && row.lease_owner !== null && row.lease_owner !== this.nodeId;
  }

  // ---- onChange ----

  onChange(listener: (rec: StudyRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async emit(studyUid: string): Promise<void> {
    if (this.listeners.size === 0 || this.closed) return;
    let rec: StudyRecord | undefined;
    try {
      rec = await this.get(studyUid);
    } catch (err) {
      if (!this.closed) this.opts.onListenerError?.(err as Error, studyUid);
      return;
    }
    if (!rec) return;
    for (const l of this.listeners) {
      try {
        l(rec);
      } catch (err) {
        // A listener's failure must not break intake; it is reported, not swallowed.
        this.opts.onListenerError?.(err as Error, studyUid);
      }
    }
  }

  // ---- intake ----

  addInstance(inst: NewInstance, now = new Date()): Promise<InstanceOutcome> {
    const at = now.toISOString();
    return this.db.transaction(async (tx) => {
      const prev = (await tx.query<{ sha256: string }>(`SELECT sha256 FROM instances WHERE sop_uid = ?${this.db.forUpdate}`, [inst.sopInstanceUid]))[0];
      if (prev && prev.sha256 === inst.sha256) return "duplicate";
      await tx.run(
        `INSERT INTO instances (sop_uid, sop_class_uid, study_uid, series_uid, transfer_syntax_uid, path, sha256, size, calling_ae, received_at, header)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (sop_uid) DO UPDATE SET sop_class_uid = excluded.sop_class_uid, study_uid = excluded.study_uid, series_uid = excluded.series_uid,
           transfer_syntax_uid = excluded.transfer_syntax_uid, path = excluded.path, sha256 = excluded.sha256, size = excluded.size,
           calling_ae = excluded.calling_ae, received_at = excluded.received_at, header = excluded.header`,
        [inst.sopInstanceUid, inst.sopClassUid, inst.studyInstanceUid, inst.seriesInstanceUid, inst.transferSyntaxUid, inst.path, inst.sha256, inst.size, inst.callingAeTitle, at, JSON.stringify(inst.header)],
      );
      const created = await tx.run(
        `INSERT INTO studies (study_uid, state, received_at, updated_at, last_instance_at, patient_name, patient_id, patient_birth_date, patient_sex, accession_number, study_description)
         VALUES (?, 'received', ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (study_uid) DO NOTHING`,
        [inst.studyInstanceUid, at, at, now.getTime(), inst.patientName ?? null, inst.patientId ?? null, inst.patientBirthDate ?? null, inst.patientSex ?? null, inst.accessionNumber ?? null, inst.studyDescription ?? null],
      );
      if (created) {
        await this.appendHistory(tx, inst.studyInstanceUid, "received", at);
      } else {
        // More images: the study is assembled again (and, if its content changed, processed again).
        const study = (await this.lockStudy(tx, inst.studyInstanceUid))!;
        await tx.run("UPDATE studies SET last_instance_at = ?, updated_at = ? WHERE study_uid = ?", [now.getTime(), at, inst.studyInstanceUid]);
        if (REOPENED_BY_NEW_INSTANCE.includes(study.state)) await this.setState(tx, inst.studyInstanceUid, study.state, "received", now, null);
        tx.notify(inst.studyInstanceUid);
      }
      return prev ? "replaced" : "new";
    });
  }

  async hasInstanceAt(path: string): Promise<boolean> {
    return (await this.db.query("SELECT 1 AS x FROM instances WHERE path = ? LIMIT 1", [path])).length > 0;
  }

  async addQuarantine(path: string, reason: string, studyUid?: string, now = new Date()): Promise<void> {
    await this.db.run("INSERT INTO quarantine (path, reason, study_uid, at) VALUES (?, ?, ?, ?)", [path, reason, studyUid ?? null, now.toISOString()]);
  }

  async quarantined(): Promise<QuarantineEntry[]> {
    const rows = await this.db.query<{ path: string; reason: string; study_uid: string | null; at: string }>("SELECT path, reason, study_uid, at FROM quarantine ORDER BY id");
    return rows.map((r) => ({ path: r.path, reason: r.reason, studyInstanceUid: r.study_uid ?? undefined, at: r.at }));
  }

  async isQuarantined(path: string): Promise<boolean> {
    return (await this.db.query("SELECT 1 AS x FROM quarantine WHERE path = ? LIMIT 1", [path])).length > 0;
  }

  // ---- study queue ----

  async instances(studyUid: string): Promise<InstanceRecord[]> {
    const rows = await this.db.query<InstanceRow>("SELECT * FROM instances WHERE study_uid = ? ORDER BY received_at, sop_uid", [studyUid]);
    return rows.map((r) => ({
      sopInstanceUid: r.sop_uid, sopClassUid: r.sop_class_uid, studyInstanceUid: r.study_uid, seriesInstanceUid: r.series_uid,
      transferSyntaxUid: r.transfer_syntax_uid, path: r.path, sha256: r.sha256, size: Number(r.size), callingAeTitle: r.calling_ae,
      receivedAt: r.received_at, header: JSON.parse(r.header) as InstanceHeader,
    }));
  }

  async instanceCount(studyUid: string): Promise<number> {
    return Number((await this.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM instances WHERE study_uid = ?", [studyUid]))[0]!.n);
  }

  async stableStudies(stableBefore: number): Promise<string[]> {
    const rows = await this.db.query<{ study_uid: string }>("SELECT study_uid FROM studies WHERE state = 'received' AND last_instance_at <= ? ORDER BY last_instance_at", [stableBefore]);
    return rows.map((r) => r.study_uid);
  }

  async countInState(state: StudyState): Promise<number> {
    return Number((await this.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM studies WHERE state = ?", [state]))[0]!.n);
  }

  async ownOutputs(sopInstanceUids: string[]): Promise<Set<string>> {
    if (sopInstanceUids.length === 0) return new Set();
    const rows = await this.db.query<{ sop_uid: string }>(`SELECT sop_uid FROM outputs WHERE sop_uid IN (${sopInstanceUids.map(() => "?").join(", ")})`, sopInstanceUids);
    return new Set(rows.map((r) => r.sop_uid));
  }

  setSeriesDecisions(studyUid: string, decisions: SeriesDecision[]): Promise<void> {
    return this.db.transaction(async (tx) => {
      await tx.run("DELETE FROM series_decisions WHERE study_uid = ?", [studyUid]);
      for (const d of decisions) await tx.run("INSERT INTO series_decisions (study_uid, series_uid, eligible, reason) VALUES (?, ?, ?, ?)", [studyUid, d.seriesInstanceUid, d.eligible ? 1 : 0, d.reason]);
    });
  }

  async seriesDecisions(studyUid: string): Promise<SeriesDecision[]> {
    const rows = await this.db.query<{ series_uid: string; eligible: number; reason: string }>("SELECT series_uid, eligible, reason FROM series_decisions WHERE study_uid = ? ORDER BY series_uid", [studyUid]);
    return rows.map((r) => ({ seriesInstanceUid: r.series_uid, eligible: Number(r.eligible) === 1, reason: r.reason }));
  }

  async transition(studyUid: string, state: StudyState, opts: TransitionOptions = {}): Promise<boolean> {
    for (const from of opts.from ?? []) assertTransition(studyUid, from, state);
    return this.db.transaction(async (tx) => {
      const row = await this.lockStudy(tx, studyUid);
      if (!row) return false;
      if (opts.from && !opts.from.includes(row.state)) return false;
      if (!canTransition(row.state, state)) throw new IllegalTransitionError(studyUid, row.state, state);
      if (this.leasedElsewhere(row)) return false;
      await this.setState(tx, studyUid, row.state, state, opts.now ?? new Date(), opts.reason);
      return true;
    });
  }

  claimNext(now = new Date()): Promise<string | undefined> {
    return this.db.transaction(async (tx) => {
      const row = (await tx.query<{ study_uid: string }>(`SELECT study_uid FROM studies WHERE state = 'queued' ORDER BY updated_at, study_uid LIMIT 1${this.db.skipLocked}`))[0];
      if (!row) return undefined;
      await this.setState(tx, row.study_uid, "queued", "processing", now);
      return row.study_uid;
    });
  }

  async renewLease(studyUid: string, now = new Date()): Promise<boolean> {
    const n = await this.db.run("UPDATE studies SET lease_expires_at = ? WHERE study_uid = ? AND state = 'processing' AND lease_owner = ?", [now.getTime() + this.leaseMs, studyUid, this.nodeId]);
    return n > 0;
  }

  requeueAbandoned(opts: { ownLeases?: boolean; now?: Date } = {}): Promise<string[]> {
    const now = opts.now ?? new Date();
    return this.db.transaction(async (tx) => {
      // No owner: left "processing" by a release before leases. Own leases are only taken back at
      // start (this node knows its live workers; their leases may lapse while a store write is retried).
      const rows = await tx.query<{ study_uid: string }>(
        `SELECT study_uid FROM studies WHERE state = 'processing'
           AND (lease_owner IS NULL OR (lease_owner <> ? AND lease_expires_at < ?) OR lease_owner = ?)
         ORDER BY updated_at${this.db.skipLocked}`,
        [this.nodeId, now.getTime(), opts.ownLeases ? this.nodeId : null],
      );
      for (const r of rows) await this.setState(tx, r.study_uid, "processing", "queued", now);
      return rows.map((r) => r.study_uid);
    });
  }

  async processedKey(studyUid: string): Promise<string | undefined> {
    const r = (await this.db.query<{ processed_key: string | null }>("SELECT processed_key FROM studies WHERE study_uid = ?", [studyUid]))[0];
    return r?.processed_key ?? undefined;
  }

  recordResults(studyUid: string, results: StudyResults, now = new Date()): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const row = await this.lockStudy(tx, studyUid);
      if (!row || row.state !== "processing" || this.leasedElsewhere(row)) return false;
      await tx.run(
        "UPDATE studies SET findings = ?, heatmaps = ?, model = ?, processed_key = ?, next_export_at = 0, export_attempts = 0 WHERE study_uid = ?",
        [JSON.stringify(results.findings), JSON.stringify(results.heatmaps), JSON.stringify(results.model), results.processedKey, studyUid],
      );
      await this.setState(tx, studyUid, "processing", "done", now, null);
      // Earlier results stay listed (their UIDs are this service's own outputs) but are no longer current.
      await tx.run("UPDATE outputs SET current = 0 WHERE study_uid = ?", [studyUid]);
      for (const o of results.outputs) {
        await tx.run(
          `INSERT INTO outputs (sop_uid, study_uid, kind, sop_class_uid, path, current, supersedes) VALUES (?, ?, ?, ?, ?, 1, ?)
           ON CONFLICT (sop_uid) DO UPDATE SET study_uid = excluded.study_uid, kind = excluded.kind, sop_class_uid = excluded.sop_class_uid, path = excluded.path, current = 1, supersedes = excluded.supersedes`,
          [o.sopInstanceUid, studyUid, o.kind, o.sopClassUid, o.path, o.kind === "sr" ? (results.supersedes ?? null) : null],
        );
        for (const d of results.destinations) await tx.run("INSERT INTO exports (output_uid, destination) VALUES (?, ?) ON CONFLICT (output_uid, destination) DO NOTHING", [o.sopInstanceUid, d]);
      }
      await this.recordNotifications(tx, studyUid, results, now);
      return true;
    });
  }

  /** The outbox rows of new results: earlier notifications of the study are replaced (they were about older results). */
  private async recordNotifications(tx: SqlTransaction, studyUid: string, results: StudyResults, now: Date): Promise<void> {
    await tx.run("DELETE FROM notifications WHERE study_uid = ?", [studyUid]);
    for (const n of results.notifications ?? []) {
      await tx.run(
        `INSERT INTO notifications (study_uid, destination, results_key, required, state, attempts, next_at, created_at, last_instance_at)
         SELECT study_uid, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER), 'pending', 0, 0, CAST(? AS TEXT), last_instance_at FROM studies WHERE study_uid = ?`,
        [n.destination, results.processedKey, n.required ? 1 : 0, now.toISOString(), studyUid],
      );
    }
  }

  // ---- notification outbox ----

  claimDueNotifications(now: number, claimMs: number, limit = 50): Promise<NotificationRecord[]> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query<NotificationRow>(
        `SELECT * FROM notifications WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, created_at, study_uid, destination LIMIT ?${this.db.skipLocked}`,
        [now, limit],
      );
      for (const r of rows) await tx.run("UPDATE notifications SET next_at = ? WHERE study_uid = ? AND destination = ?", [now + claimMs, r.study_uid, r.destination]);
      return rows.map(toNotification);
    });
  }

  async nextNotificationAt(): Promise<number | undefined> {
    const r = (await this.db.query<{ t: number | string | null }>("SELECT MIN(next_at) AS t FROM notifications WHERE state = 'pending'"))[0];
    return r?.t === null || r?.t === undefined ? undefined : Number(r.t);
  }

  async notifications(studyUid: string): Promise<NotificationRecord[]> {
    return (await this.db.query<NotificationRow>("SELECT * FROM notifications WHERE study_uid = ? ORDER BY destination", [studyUid])).map(toNotification);
  }

  markNotificationDelivered(studyUid: string, destination: string, resultsKey: string, ack: string, now = new Date()): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const n = await tx.run(
        "UPDATE notifications SET state = 'delivered', attempts = attempts + 1, ack = ?, last_error = NULL, delivered_at = ? WHERE study_uid = ? AND destination = ? AND results_key = ? AND state = 'pending'",
        [ack, now.toISOString(), studyUid, destination, resultsKey],
      );
      if (n > 0) tx.notify(studyUid);
      return n > 0;
    });
  }

  markNotificationAttemptFailed(studyUid: string, destination: string, resultsKey: string, error: string, retryAt: number | undefined): Promise<void> {
    return this.db.transaction(async (tx) => {
      const n = await tx.run(
        `UPDATE notifications SET attempts = attempts + 1, last_error = ?, state = ?, next_at = ? WHERE study_uid = ? AND destination = ? AND results_key = ? AND state = 'pending'`,
        [error.slice(0, 1000), retryAt === undefined ? "failed" : "pending", retryAt ?? 0, studyUid, destination, resultsKey],
      );
      if (n > 0) tx.notify(studyUid);
    });
  }

  async undeliveredRequiredNotifications(studyUid: string): Promise<number> {
    return Number((await this.db.query<{ n: number }>("SELECT COUNT(*) AS n FROM notifications WHERE study_uid = ? AND required = 1 AND state <> 'delivered'", [studyUid]))[0]!.n);
  }

  async notificationCounts(): Promise<{ destination: string; state: NotificationState; count: number }[]> {
    const rows = await this.db.query<{ destination: string; state: NotificationState; n: number }>("SELECT destination, state, COUNT(*) AS n FROM notifications GROUP BY destination, state ORDER BY destination, state");
    return rows.map((r) => ({ destination: r.destination, state: r.state, count: Number(r.n) }));
  }

  // ---- export queue ----

  async studiesToExport(): Promise<string[]> {
    return (await this.db.query<{ study_uid: string }>("SELECT study_uid FROM studies WHERE state = 'done' ORDER BY updated_at")).map((r) => r.study_uid);
  }

  async outputs(studyUid: string): Promise<OutputRecord[]> {
    return (await this.db.query<OutputRow>(`SELECT * FROM outputs WHERE study_uid = ? AND current = 1 ORDER BY ${SR_FIRST}, sop_uid`, [studyUid])).map(toOutput);
  }

  async pendingExports(studyUid: string, destination: string): Promise<OutputRecord[]> {
    const rows = await this.db.query<OutputRow>(
      `SELECT o.sop_uid, o.study_uid, o.kind, o.sop_class_uid, o.path FROM outputs o
       LEFT JOIN exports e ON e.output_uid = o.sop_uid AND e.destination = ?
       WHERE o.study_uid = ? AND o.current = 1 AND (e.sent IS NULL OR e.sent = 0) ORDER BY ${SR_FIRST}, o.sop_uid`,
      [destination, studyUid],
    );
    return rows.map(toOutput);
  }

  async markExported(outputUid: string, destination: string, now = new Date()): Promise<void> {
    await this.db.run(
      `INSERT INTO exports (output_uid, destination, sent, attempts, sent_at) VALUES (?, ?, 1, 1, ?)
       ON CONFLICT (output_uid, destination) DO UPDATE SET sent = 1, attempts = exports.attempts + 1, sent_at = excluded.sent_at, last_error = NULL`,
      [outputUid, destination, now.toISOString()],
    );
  }

  async markExportFailed(outputUid: string, destination: string, error: string): Promise<void> {
    await this.db.run(
      `INSERT INTO exports (output_uid, destination, attempts, last_error) VALUES (?, ?, 1, ?)
       ON CONFLICT (output_uid, destination) DO UPDATE SET attempts = exports.attempts + 1, last_error = excluded.last_error`,
      [outputUid, destination, error],
    );
  }

  async exports(studyUid: string): Promise<ExportRecord[]> {
    const rows = await this.db.query<{ output_uid: string; destination: string; sent: number; attempts: number; last_error: string | null; sent_at: string | null }>(
      "SELECT e.* FROM exports e JOIN outputs o ON o.sop_uid = e.output_uid WHERE o.study_uid = ? ORDER BY e.destination, e.output_uid",
      [studyUid],
    );
    return rows.map((r) => ({ outputUid: r.output_uid, destination: r.destination, sent: Number(r.sent) === 1, attempts: Number(r.attempts), lastError: r.last_error ?? undefined, sentAt: r.sent_at ?? undefined }));
  }

  async exportSchedule(studyUid: string): Promise<{ nextAt: number; attempts: number }> {
    const r = (await this.db.query<{ next_export_at: number; export_attempts: number }>("SELECT next_export_at, export_attempts FROM studies WHERE study_uid = ?", [studyUid]))[0];
    if (!r) throw new Error(`study ${studyUid}: not in the store`);
    return { nextAt: Number(r.next_export_at), attempts: Number(r.export_attempts) };
  }

  setExportSchedule(studyUid: string, nextAt: number, attempts: number, lastError?: string): Promise<void> {
    return this.db.transaction(async (tx) => {
      await tx.run("UPDATE studies SET next_export_at = ?, export_attempts = ?, reason = ? WHERE study_uid = ?", [nextAt, attempts, lastError ?? null, studyUid]);
      tx.notify(studyUid);
    });
  }

  async claimExport(studyUid: string, now = new Date()): Promise<boolean> {
    const n = await this.db.run(
      `UPDATE studies SET export_owner = ?, export_lease_expires_at = ?
       WHERE study_uid = ? AND state = 'done' AND (export_owner IS NULL OR export_owner = ? OR export_lease_expires_at < ?)`,
      [this.nodeId, now.getTime() + this.leaseMs, studyUid, this.nodeId, now.getTime()],
    );
    return n > 0;
  }

  async releaseExport(studyUid: string): Promise<void> {
    await this.db.run("UPDATE studies SET export_owner = NULL, export_lease_expires_at = NULL WHERE study_uid = ? AND export_owner = ?", [studyUid, this.nodeId]);
  }

  markStudyExported(studyUid: string, now = new Date()): Promise<boolean> {
    return this.transition(studyUid, "exported", { from: ["done"], reason: null, now });
  }

  // ---- worklist ----

  async get(studyUid: string): Promise<StudyRecord | undefined> {
    const row = (await this.db.query<StudyRow>(`SELECT ${STUDY_COLUMNS} FROM studies WHERE study_uid = ?`, [studyUid]))[0];
    if (!row) return undefined;
    const history = await this.db.query<HistoryRow>("SELECT study_uid, state, at, node FROM study_history WHERE study_uid = ? ORDER BY id", [studyUid]);
    const outputs = await this.db.query<OutputRow>(`SELECT * FROM outputs WHERE study_uid = ? AND current = 1 ORDER BY ${SR_FIRST}, sop_uid`, [studyUid]);
    const notifications = await this.db.query<NotificationRow>("SELECT * FROM notifications WHERE study_uid = ? ORDER BY destination", [studyUid]);
    return toRecord(row, history, outputs, notifications);
  }

  async list(): Promise<StudyRecord[]> {
    const rows = await this.db.query<StudyRow>(`SELECT ${STUDY_COLUMNS} FROM studies ORDER BY received_at DESC, study_uid`);
    const history = groupBy(await this.db.query<HistoryRow>("SELECT study_uid, state, at, node FROM study_history ORDER BY id"));
    const outputs = groupBy(await this.db.query<OutputRow>(`SELECT * FROM outputs WHERE current = 1 ORDER BY ${SR_FIRST}, sop_uid`));
    const notifications = groupBy(await this.db.query<NotificationRow>("SELECT * FROM notifications ORDER BY study_uid, destination"));
    return rows.map((r) => toRecord(r, history.get(r.study_uid) ?? [], outputs.get(r.study_uid) ?? [], notifications.get(r.study_uid) ?? []));
  }

  async countsByState(): Promise<Record<StudyState, number>> {
    const counts = Object.fromEntries(STUDY_STATES.map((s) => [s, 0])) as Record<StudyState, number>;
    for (const r of await this.db.query<{ state: StudyState; n: number }>("SELECT state, COUNT(*) AS n FROM studies GROUP BY state")) counts[r.state] = Number(r.n);
    return counts;
  }
}

function groupBy<T extends { study_uid: string }>(rows: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of rows) {
    const list = m.get(r.study_uid);
    if (list) list.push(r);
    else m.set(r.study_uid, [r]);
  }
  return m;
}

function toOutput(r: OutputRow): OutputRecord {
  return { sopInstanceUid: r.sop_uid, studyInstanceUid: r.study_uid, kind: r.kind, sopClassUid: r.sop_class_uid, path: r.path };
}

function toNotification(r: NotificationRow): NotificationRecord {
  const n: NotificationRecord = {
    studyInstanceUid: r.study_uid, destination: r.destination, resultsKey: r.results_key, required: Number(r.required) === 1, state: r.state,
    attempts: Number(r.attempts), nextAt: Number(r.next_at), createdAt: r.created_at, lastInstanceAt: Number(r.last_instance_at),
  };
  if (r.last_error !== null) n.lastError = r.last_error;
  if (r.ack !== null) n.ack = r.ack;
  if (r.delivered_at !== null) n.deliveredAt = r.delivered_at;
  return n;
}

function toRecord(r: StudyRow, history: HistoryRow[], outputs: OutputRow[], notifications: NotificationRow[] = []): StudyRecord {
  const rec: StudyRecord = {
    studyInstanceUid: r.study_uid,
    state: r.state,
    history: history.map((h): HistoryEntry => (h.node === null ? { state: h.state, at: h.at } : { state: h.state, at: h.at, node: h.node })),
    receivedAt: r.received_at,
    updatedAt: r.updated_at,
  };
  if (r.reason !== null) rec.reason = r.reason;
  if (r.patient_name !== null) rec.patientName = r.patient_name;
  if (r.patient_id !== null) rec.patientId = r.patient_id;
  if (r.patient_birth_date !== null) rec.patientBirthDate = r.patient_birth_date;
  if (r.patient_sex !== null) rec.patientSex = r.patient_sex;
  if (r.accession_number !== null) rec.accessionNumber = r.accession_number;
  if (r.study_description !== null) rec.studyDescription = r.study_description;
  if (r.findings !== null) rec.findings = JSON.parse(r.findings) as FindingResult[];
  if (r.heatmaps !== null) rec.heatmaps = JSON.parse(r.heatmaps) as { label: string; path: string }[];
  if (outputs.length) {
    const sr = outputs.find((o) => o.kind === "sr");
    const pm = outputs.filter((o) => o.kind === "pm").map((o) => o.sop_uid);
    rec.outputs = { sr: sr?.sop_uid, sc: outputs.filter((o) => o.kind === "sc").map((o) => o.sop_uid), ...(pm.length && { pm }), ...(sr?.supersedes && { supersedes: sr.supersedes }) };
  }
  if (r.model !== null) rec.model = JSON.parse(r.model) as NonNullable<StudyRecord["model"]>;
  if (r.processed_by !== null) rec.processedBy = r.processed_by;
  if (notifications.length) rec.notifications = notifications.map(toNotification);
  return rec;
}
