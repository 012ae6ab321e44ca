/**
 * The spool: where received instances are kept, durably, before their C-STORE is answered Success.
 * Each data set is appended to this node's log (segment-log.ts: `<spool>/log/<node>/*.seg`) as it
 * arrives, and copied to `<spool>/incoming/<uuid>.part` once whole; accepted, the log seals it and
 * one flush (shared by every instance sealed meanwhile, on every association) makes it durable while
 * the copy is hashed and renamed to `<spool>/<study>/<sop>.dcm`. That copy is made durable in the
 * background, after the answer; only then may the log reuse the instance's segment. A crash before
 * that is repaired at start (replaySpoolLog): the log files again every sealed instance it holds.
 * An instance that cannot be filed goes to `<quarantine>/<time>-<id>.dcm` (the reason to the
 * quarantine log). Each spool file is the sender's data set, unchanged, behind a Part 10 header
 * (part10.ts). The spool, not the store, is the durable record: recovery records again what the
 * store lost. Receiving and recovery describe an instance with the same function (spooledInstance)
 * and the same content hash (DatasetHash).
 */
import { randomUUID } from "node:crypto";
import { close, closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";
import { parseBudgetSchema, type ParseBudget } from "../config/service.ts";
import { readDicom } from "../dicom/read.ts";
import { isValidUid } from "../dicom/uid.ts";
import { extractHeader, type ReceivedHeader } from "../intake/header.ts";
import type { IntakeStore, QuarantineLog } from "../store/roles.ts";
import type { NewInstance } from "../store/types.ts";
import { datasetSha256 } from "./content-hash.ts";
import { DirectorySync } from "./dir-sync.ts";
import { datasetEncoding, measureHeader, type DatasetEncoding } from "./header-extent.ts";
import { HeaderParser, ParseBudgetError, type MeasuredCost } from "./header-parser.ts";
import { part10DatasetOffset, part10Header } from "./part10.ts";
import { replayLog, SegmentLog, type LoggedInstance } from "./segment-log.ts";
import { STORE_STATUS, type StoreResult } from "./store-response.ts";

/** Where the spool lists a quarantined file with its reason (the store's quarantine log). */
export type QuarantineRecorder = Pick<QuarantineLog, "addQuarantine">;

/** The C-STORE whose data set is being spooled. */
export interface SpoolRequest {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  callingAeTitle: string;
}

/** A spooled instance's outcome: a failure status, or Success with the instance (durable, not yet recorded). */
export type SpoolResult = StoreResult & { instance?: NewInstance };

export interface SpoolOptions {
  spoolDir: string;
  quarantineDir: string;
  quarantineLog: QuarantineRecorder;
  logger: Logger;
  /** This node's name: its log is `<spool>/log/<node>` (nodes sharing a spool folder each write their own). Default "local". */
  nodeId?: string;
  /** Size of the log's segment files (default 32 MiB; the tests use small ones to reuse segments often). */
  segmentBytes?: number;
  /**
   * Default true. false skips the fdatasync/fsync calls — ONLY for bench/ingest's diagnostic row
   * (how much of the time is the disk flush); success is then no longer a durability promise.
   */
  syncToDisk?: boolean;
  /** What one header may cost to parse (default: the configuration's defaults). */
  budget?: ParseBudget;
}

const STUDY_DIR_CACHE = 10_000;
/** How long a folder copy waits for others before they are flushed together (off the answer path). */
const COPY_FLUSH_DELAY_MS = 250;
const closeAsync = promisify(close);

/** The log folder of a node in a spool folder. */
export function spoolLogDir(spoolDir: string, nodeId = "local"): string {
  return join(spoolDir, "log", nodeId.replace(/[^A-Za-z0-9._-]/g, "_"));
}

/**
 * One C-STORE data set on its way into the spool: each fragment goes to the log as it arrives
 * (`write` on the main thread, into the page cache) and is kept for the folder copy; its incoming
 * file is opened on the thread pool meanwhile, so the copy after the last fragment is one `writev`.
 * A write error is remembered rather than thrown so the association keeps its framing and the
 * sender gets a failure status for this instance.
 *
 * The header is measured against the parse budget as its bytes arrive (measureHeader, bounded
 * work, again each time the kept bytes have doubled) and parsed off the main thread
 * (HeaderParser) as soon as its end is known — usually from the first fragment, so that the parse
 * and the study folder's mkdir overlap the transfer.
 */
export class SpoolFile {
  size = 0;
  failure?: Error;
  readonly part10: Buffer;
  private readonly logged?: LoggedInstance;
  /** The incoming copy, written as the fragments arrive; undefined once closed or when it could not be written (see `failure`). */
  private fd?: number;
  private copied?: Promise<void>;
  private readonly encoding?: DatasetEncoding;
  /** The first dataset bytes (up to maxHeaderBytes), until the header's extent is known. */
  private head: Buffer[] = [];
  private headLength = 0;
  /** Measure again once this many bytes are kept (doubling: the measuring costs at most twice one measure of the header). */
  private measureAt = 0;
  /** The header's parse, once started. */
  private parsed?: Promise<Record<string, unknown>>;
  /** Why the header cannot be parsed within its budget. */
  private overBudget?: string;
  /** The header could not be walked: the full parse (bounded by the kept bytes and the parser's limits) decides. */
  private unwalkable = false;

  constructor(
    readonly path: string,
    readonly request: SpoolRequest,
    private readonly spool: { log: SegmentLog; budget: ParseBudget; parser: HeaderParser },
    /** Called once with the header when it is known before the last fragment (to prepare the study folder). */
    private readonly onEarlyHeader: (dataset: Record<string, unknown>) => void,
  ) {
    this.part10 = part10Header({ sopClassUid: request.sopClassUid, sopInstanceUid: request.sopInstanceUid, transferSyntaxUid: request.transferSyntaxUid, sourceAeTitle: request.callingAeTitle });
    this.encoding = datasetEncoding(request.transferSyntaxUid);
    try {
      this.logged = spool.log.begin({ ...request });
    } catch (err) {
      this.fail(err as Error);
    }
    try {
      this.fd = openSync(path, "w");
      writeAllSync(this.fd, this.part10);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** The next fragment of the data set, written to the log at once. */
  append(b: Buffer): void {
    this.size += b.length;
    if (this.measuring()) {
      if (this.headLength < this.spool.budget.maxHeaderBytes) {
        this.head.push(b);
        this.headLength += b.length;
      }
      if (this.headLength >= this.measureAt) this.measure(false);
    }
    if (this.failure) return;
    try {
      writeAllSync(this.fd!, b);
      this.logged!.append(b);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private measuring(): boolean {
    return !this.parsed && this.overBudget === undefined && !this.unwalkable && this.encoding !== undefined;
  }

  private measure(complete: boolean): void {
    // Usually the head is the first fragment alone: used as it is rather than copied.
    const head = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head, this.headLength);
    const extent = measureHeader(head, this.encoding!, this.spool.budget, complete);
    if (extent.kind === "incomplete") {
      this.measureAt = Math.min(2 * this.headLength, this.spool.budget.maxHeaderBytes);
      return;
    }
    if (extent.kind === "overBudget") this.overBudget = extent.reason;
    else if (extent.kind === "malformed") this.unwalkable = true;
    else this.startParse(head.subarray(0, extent.end), !complete, extent);
    if (extent.kind !== "malformed") this.releaseHead();
  }

  /** `measured`: what measureHeader counted (absent for a header it could not walk). */
  private startParse(header: Buffer, early: boolean, measured?: MeasuredCost): void {
    this.parsed = this.spool.parser.parse(Buffer.concat([this.part10, header]), measured);
    // A failed parse is answered by headerDataset(); here it only means no early folder.
    this.parsed.then((dataset) => early && this.onEarlyHeader(dataset)).catch(() => undefined);
  }

  /**
   * Let the fragments go now rather than with the instance: buffers that outlive a young-generation
   * collection are only freed by full (mark-compact) ones, which their external memory then triggers.
   */
  private releaseHead(): void {
    this.head = [];
  }

  /** The header, once the last fragment is in; rejects with a ParseBudgetError when it is over its budget. */
  headerDataset(): Promise<Record<string, unknown>> {
    if (!this.parsed && this.overBudget === undefined) {
      // A deflated data set cannot be measured as it arrives: its copy is parsed (in a worker, within the budget).
      if (!this.encoding) this.parsed = this.copy().then(() => this.spool.parser.parseFile(this.path));
      else if (this.unwalkable || this.size > this.headLength) this.startParse(this.joinedHead(), false);
      else this.measure(true);
      if (!this.parsed && this.overBudget === undefined) this.startParse(this.joinedHead(), false);
    }
    this.releaseHead();
    if (this.overBudget !== undefined) return Promise.reject(new ParseBudgetError(this.overBudget));
    return this.parsed!;
  }

  private joinedHead(): Buffer {
    return Buffer.concat(this.head, this.headLength);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
  }

  /** The incoming copy is whole: closed (on the thread pool), once. */
  copy(): Promise<void> {
    this.copied ??= (async () => {
      const fd = this.fd;
      this.fd = undefined;
      if (fd === undefined) throw this.failure ?? new Error("the incoming copy is not open");
      await closeAsync(fd);
    })();
    return this.copied;
  }

  /**
   * Seals the instance in the log; resolves once it is durable there (one flush shared with the
   * instances sealed meanwhile). Its content hash, computed as the fragments arrived, is known at once.
   */
  seal(studyInstanceUid: string): { durable: Promise<void>; sha256: string } {
    const durable = this.logged!.seal({ studyInstanceUid, sopInstanceUid: this.request.sopInstanceUid });
    return { durable, sha256: this.logged!.sha256! };
  }

  /** Takes a sealed instance back from the log (its copy could not be filed; the sender is answered a failure). */
  withdraw(): void {
    try {
      this.logged?.withdraw();
    } catch {
      // Then a replay may file it after all: complete, durable bytes the sender will send again (an identical copy).
    }
  }

  /** Durable in its folder (or given up): the log may reuse its space. */
  release(): void {
    this.releaseHead();
    this.logged?.release();
  }

  /** Removes the incoming copy and releases the log's space (the instance is abandoned, e.g. cut off by the end of its association). */
  async discard(): Promise<void> {
    this.release();
    await this.copy().catch(() => undefined);
    try {
      unlinkSync(this.path);
    } catch {
      /* already moved or never created */
    }
  }
}

/**
 * Writes a spool file — the Part 10 header, then the data set from `source` — to `fh`. The listener
 * passes the fragments it kept; a replay and a data set too large to keep pass the log's reader.
 */
async function writeSpoolCopy(fh: FileHandle, part10: Buffer, source: Buffer[] | AsyncIterable<Buffer>): Promise<void> {
  if (Array.isArray(source)) {
    const buffers = [part10, ...source];
    const total = buffers.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(buffers, 0);
    if (bytesWritten !== total) throw new Error(`short write: ${bytesWritten} of ${total} bytes`);
    return;
  }
  let at = (await fh.write(part10, 0, part10.length, 0)).bytesWritten;
  if (at !== part10.length) throw new Error(`short write: ${at} of ${part10.length} bytes`);
  for await (const b of source) {
    const { bytesWritten } = await fh.write(b, 0, b.length, at);
    if (bytesWritten !== b.length) throw new Error(`short write: ${bytesWritten} of ${b.length} bytes`);
    at += b.length;
  }
}

/** The facts about a spooled instance that its file does not say by its place in the spool. */
interface SpooledFacts {
  transferSyntaxUid: string;
  /** Where the data set starts in the file (after the Part 10 header). */
  datasetOffset: number;
  /** Bytes of the data set (the file's size less `datasetOffset`). */
  datasetSize: number;
  /** The content hash of the data set bytes (DatasetHash). */
  sha256: string;
  callingAeTitle: string;
  /** The SOP class when the header does not name one (the C-STORE's Affected SOP Class). */
  sopClassUid: string;
}

/**
 * The one description of a spooled instance, for receiving and for recovery alike: its record
 * from its header and its file, with the content hash of its data set bytes (which keys "already
 * processed" and the result UIDs: DatasetHash, over the same bytes, in both).
 */
export function spooledInstance(path: string, header: ReceivedHeader, facts: SpooledFacts): NewInstance {
  return {
    sopInstanceUid: header.sopInstanceUid!,
    sopClassUid: header.sopClassUid ?? facts.sopClassUid,
    studyInstanceUid: header.studyInstanceUid!,
    seriesInstanceUid: header.seriesInstanceUid!,
    transferSyntaxUid: facts.transferSyntaxUid,
    path,
    sha256: facts.sha256,
    size: facts.datasetSize,
    callingAeTitle: facts.callingAeTitle,
    header: header.header,
    patientName: header.patientName,
    patientId: header.patientId,
    patientBirthDate: header.patientBirthDate,
    patientSex: header.patientSex,
    accessionNumber: header.accessionNumber,
    studyDescription: header.studyDescription,
  };
}

/** The identifying UIDs a header lacks or has invalid (an instance without them cannot be filed). */
function missingUids(header: ReceivedHeader): string[] {
  return (["studyInstanceUid", "seriesInstanceUid", "sopInstanceUid"] as const).filter((k) => !header[k] || !isValidUid(header[k]!));
}

interface StudyDir {
  made: Promise<string>;
  durable?: Promise<void>;
}

/** A folder copy whose flush is pending, and what to do once it is durable. */
interface PendingCopy {
  path: string;
  studyDir: string;
  entry: StudyDir;
  file: SpoolFile;
}

export class Spool {
  readonly incomingDir: string;
  readonly logDir: string;
  private readonly spoolDir: string;
  private readonly quarantineDir: string;
  readonly syncToDisk: boolean;
  readonly budget: ParseBudget;
  readonly parser: HeaderParser;
  private log?: SegmentLog;
  private readonly directorySync = new DirectorySync();
  /**
   * Study folders by study UID: `made` once the folder exists (mkdir started as soon as an
   * instance's header is known, usually from its first fragment, so it overlaps the transfer);
   * `durable` once an fsync of the spool folder that started after the mkdir has finished.
   */
  private readonly studyDirs = new Map<string, StudyDir>();
  private pendingCopies: PendingCopy[] = [];
  private copyFlushTimer?: NodeJS.Timeout;
  private copyFlush?: Promise<void>;

  constructor(private readonly opts: SpoolOptions) {
    this.spoolDir = opts.spoolDir;
    this.quarantineDir = opts.quarantineDir;
    this.syncToDisk = opts.syncToDisk ?? true;
    this.budget = opts.budget ?? parseBudgetSchema.parse({});
    this.parser = new HeaderParser({ timeoutMs: this.budget.timeoutSeconds * 1000 });
    this.incomingDir = join(this.spoolDir, "incoming");
    this.logDir = spoolLogDir(this.spoolDir, opts.nodeId);
    mkdirSync(this.incomingDir, { recursive: true });
    mkdirSync(this.quarantineDir, { recursive: true });
    // Partial copies of a process that died mid-transfer: never acknowledged (or still in the log, which files them again).
    for (const f of readdirSync(this.incomingDir)) if (f.endsWith(".part")) unlinkSync(join(this.incomingDir, f));
  }

  /** A data set starts arriving: its record in the log, its copy in `incoming`. */
  receive(request: SpoolRequest): SpoolFile {
    if (!this.log) throw new Error("spool not ready");
    return new SpoolFile(join(this.incomingDir, `${randomUUID()}.part`), request, { log: this.log, budget: this.budget, parser: this.parser }, (dataset) => this.prepareStudyDirEarly(dataset));
  }

  /**
   * Files what this node's log still holds from a previous run (replaySpoolLog), opens the log and
   * starts the header parser's workers; the listener opens its port after that.
   */
  async ready(): Promise<void> {
    await replaySpoolLog({ spoolDir: this.spoolDir, quarantineDir: this.quarantineDir, logDir: this.logDir, quarantineLog: this.opts.quarantineLog, logger: this.opts.logger });
    this.log = await SegmentLog.open({ dir: this.logDir, segmentBytes: this.opts.segmentBytes, syncToDisk: this.syncToDisk });
    await this.parser.warm();
  }

  /** After the listener's last instance: the pending folder copies are flushed (the log then holds nothing), the parser stops. */
  async close(): Promise<void> {
    clearTimeout(this.copyFlushTimer);
    while (this.pendingCopies.length || this.copyFlush) await (this.copyFlush ?? this.flushCopies());
    await this.log?.close();
    await this.parser.close();
  }

  /**
   * After the last fragment: check the header (parsed when its first fragments arrived, else now);
   * then, at the same time, seal the instance in the log (durable with the log's next flush) and
   * copy it to its study folder, hashing it on the way. Success once both are done; the copy is
   * made durable in the background. A Success result is durable; recording it is the caller's.
   */
  async finish(w: SpoolFile): Promise<SpoolResult> {
    const { request } = w;
    const callingAe = request.callingAeTitle;
    const { logger } = this.opts;
    if (w.failure) {
      await w.discard();
      logger.error({ err: w.failure.message, sop: request.sopInstanceUid }, "cannot write received instance");
      return { status: STORE_STATUS.outOfResources, comment: `cannot write instance: ${w.failure.message}`.slice(0, 64) };
    }
    const copied = w.copy();
    copied.catch(() => undefined);
    let header: ReceivedHeader;
    try {
      header = extractHeader(await w.headerDataset());
    } catch (err) {
      if (err instanceof ParseBudgetError) {
        await this.setAside(w, `instance ${request.sopInstanceUid} from ${callingAe}: header over the parse budget: ${err.message}`);
        return { status: STORE_STATUS.cannotUnderstand, comment: "header over the parse budget" };
      }
      await this.setAside(w, `unreadable dataset from ${callingAe}: ${(err as Error).message}`);
      return { status: STORE_STATUS.cannotUnderstand, comment: "dataset cannot be parsed" };
    }
    const refusal = this.checkIdentity(header, request);
    if (refusal) {
      await this.setAside(w, refusal.reason, header.studyInstanceUid);
      return refusal.result;
    }
    const studyUid = header.studyInstanceUid!;
    let sealed = false;
    try {
      const { durable, sha256 } = w.seal(studyUid);
      sealed = true;
      const [entry] = await Promise.all([this.fileCopy(w.path, studyUid, request.sopInstanceUid, copied), durable]);
      const instance = spooledInstance(entry.path, header, { transferSyntaxUid: request.transferSyntaxUid, datasetOffset: w.part10.length, datasetSize: w.size, sha256, callingAeTitle: callingAe, sopClassUid: request.sopClassUid });
      this.makeDurableLater({ path: entry.path, studyDir: join(this.spoolDir, studyUid), entry: entry.dir, file: w });
      return { status: STORE_STATUS.success, instance };
    } catch (err) {
      logger.error({ err: (err as Error).message, sop: header.sopInstanceUid, study: studyUid }, "cannot spool received instance");
      if (sealed) w.withdraw();
      await w.discard().catch(() => undefined);
      return { status: STORE_STATUS.outOfResources, comment: `cannot spool instance: ${(err as Error).message}`.slice(0, 64) };
    }
  }

  /**
   * Renames a written copy (once `copied` resolves) into its study folder; where it is now. A study
   * folder that went away after it was prepared (an operator, a retention job) is made again.
   */
  private async fileCopy(incoming: string, studyUid: string, sopInstanceUid: string, copied: Promise<unknown>): Promise<{ path: string; dir: StudyDir }> {
    const finalPath = join(this.spoolDir, studyUid, `${sopInstanceUid}.dcm`);
    let dir = this.prepareStudyDir(studyUid);
    await Promise.all([dir.made, copied]);
    try {
      renameSync(incoming, finalPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || !existsSync(incoming)) throw err;
      this.studyDirs.delete(studyUid);
      dir = this.prepareStudyDir(studyUid);
      await dir.made;
      renameSync(incoming, finalPath);
    }
    return { path: finalPath, dir };
  }

  /** An instance that will not be filed: its copy to the quarantine, the log's space released. */
  private async setAside(w: SpoolFile, reason: string, studyUid?: string): Promise<void> {
    const kept = await w.copy().then(
      () => true,
      (err: Error) => {
        reason = `${reason} (its bytes could not be kept: ${err.message})`;
        return false;
      },
    );
    this.quarantine(w.path, reason, studyUid, kept);
    w.release();
  }

  /** Whether the header identifies the instance the C-STORE announced; the refusal and its quarantine reason when not. */
  private checkIdentity(header: ReceivedHeader, request: SpoolRequest): { result: StoreResult; reason: string } | undefined {
    const sop = header.sopInstanceUid;
    const missing = missingUids(header);
    if (missing.length) {
      return {
        result: { status: STORE_STATUS.datasetMismatch, comment: `missing or invalid ${missing.join(", ")}`.slice(0, 64) },
        reason: `instance ${sop ?? "(no SOP Instance UID)"} from ${request.callingAeTitle}: missing or invalid ${missing.join(", ")}`,
      };
    }
    if (sop !== request.sopInstanceUid) {
      return { result: { status: STORE_STATUS.datasetMismatch, comment: "SOP Instance UID mismatch" }, reason: `instance ${sop}: SOP Instance UID differs from the C-STORE's Affected SOP Instance UID` };
    }
    // The spool file's meta header carries the C-STORE's class: a dataset of another class would make it inconsistent.
    if (header.sopClassUid !== undefined && header.sopClassUid !== request.sopClassUid) {
      return {
        result: { status: STORE_STATUS.datasetMismatch, comment: "SOP Class UID mismatch" },
        reason: `instance ${sop}: SOP Class UID ${header.sopClassUid} differs from the C-STORE's Affected SOP Class UID ${request.sopClassUid}`,
      };
    }
    return undefined;
  }

  /** Moves a file that cannot be filed to the quarantine folder and lists it with its reason. */
  quarantine(tempPath: string, reason: string, studyUid?: string, exists = true): void {
    let kept = join(this.quarantineDir, `${new Date().toISOString().replace(/[:.]/g, "-")}-${randomUUID().slice(0, 8)}.dcm`);
    try {
      if (!exists) throw Object.assign(new Error("not written"), { code: "ENOENT" });
      renameSync(tempPath, kept);
    } catch (err) {
      // The record names where the bytes really are (or that they are gone), not a path that was never made.
      if (exists) reason = `${reason} (not moved to the quarantine: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
      kept = tempPath;
    }
    // The file is kept either way; a log entry the store refuses is said in the service log instead.
    this.opts.quarantineLog.addQuarantine(kept, reason, studyUid).catch((err: Error) => this.opts.logger.error({ path: kept, err: err.message }, "cannot record a quarantined instance"));
    this.opts.logger.warn({ path: kept, reason, study: studyUid }, "instance quarantined");
  }

  /** A filed copy, to be flushed with the others that arrive within COPY_FLUSH_DELAY_MS; then the log may reuse its space. */
  private makeDurableLater(copy: PendingCopy): void {
    if (!this.syncToDisk) return copy.file.release();
    this.pendingCopies.push(copy);
    if (!this.copyFlushTimer && !this.copyFlush) {
      this.copyFlushTimer = setTimeout(() => void this.flushCopies(), COPY_FLUSH_DELAY_MS);
      this.copyFlushTimer.unref();
    }
  }

  /**
   * Flushes the pending copies: each file's data, then its study folder's entry and, for a new study
   * folder, the spool folder's entry; then the log may reuse their space. A copy that cannot be
   * flushed stays in the log (a replay files it again) and is tried again with the next batch; one
   * that is gone (its study removed meanwhile) has nothing left to protect.
   */
  private flushCopies(): Promise<void> {
    this.copyFlushTimer = undefined;
    const batch = this.pendingCopies;
    this.pendingCopies = [];
    const run = (async () => {
      const flushed = await Promise.all(batch.map((c) => fdatasyncFile(c.path)));
      const kept = batch.filter((_, i) => flushed[i] !== "failed");
      await Promise.all([...new Set(kept.map((c) => c.studyDir))].map((d) => this.directorySync.sync(d).catch(() => undefined)));
      await Promise.all([...new Set(kept.map((c) => c.entry))].map((e) => this.studyDirDurable(e).catch(() => undefined)));
      for (const c of kept) c.file.release();
      const failed = batch.filter((_, i) => flushed[i] === "failed");
      if (failed.length) this.opts.logger.error({ files: failed.length }, "cannot flush spooled copies; the log keeps them and they are tried again");
      this.pendingCopies.push(...failed);
    })();
    this.copyFlush = run.finally(() => {
      this.copyFlush = undefined;
      if (this.pendingCopies.length && !this.copyFlushTimer) {
        this.copyFlushTimer = setTimeout(() => void this.flushCopies(), COPY_FLUSH_DELAY_MS);
        this.copyFlushTimer.unref();
      }
    });
    return this.copyFlush;
  }

  private prepareStudyDir(studyUid: string): StudyDir {
    let entry = this.studyDirs.get(studyUid);
    if (!entry) {
      const dir = join(this.spoolDir, studyUid);
      const made = mkdir(dir, { recursive: true }).then(() => dir);
      const created: StudyDir = { made };
      // Tried again by the next instance; only this attempt is forgotten, never a newer one that replaced it.
      made.catch(() => {
        if (this.studyDirs.get(studyUid) === created) this.studyDirs.delete(studyUid);
      });
      this.studyDirs.set(studyUid, created);
      entry = created;
      // Only recent studies matter (their instances arrive together); forgetting an old one costs a
      // mkdir and an fsync of the spool folder if it ever gets more instances.
      if (this.studyDirs.size > STUDY_DIR_CACHE) this.studyDirs.delete(this.studyDirs.keys().next().value!);
    }
    return entry;
  }

  /** The fsync that makes the study folder's entry durable: shared by its instances, started again after a failure. */
  private studyDirDurable(entry: StudyDir): Promise<void> {
    if (!entry.durable) {
      const sync = this.directorySync.sync(this.spoolDir);
      entry.durable = sync;
      sync.catch(() => {
        if (entry.durable === sync) entry.durable = undefined;
      });
    }
    return entry.durable;
  }

  private prepareStudyDirEarly(dataset: Record<string, unknown>): void {
    const studyUid = typeof dataset.StudyInstanceUID === "string" ? dataset.StudyInstanceUID : undefined;
    // Only a valid UID names a folder (it is a path component); anything else waits for finish's checks.
    if (studyUid && isValidUid(studyUid)) this.prepareStudyDir(studyUid);
  }
}

/** fdatasync of a file by name: "flushed", "gone" (removed meanwhile) or "failed". */
async function fdatasyncFile(path: string): Promise<"flushed" | "gone" | "failed"> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : "failed";
  }
  try {
    await fh.datasync();
    return "flushed";
  } catch {
    return "failed";
  } finally {
    await fh.close();
  }
}

export interface ReplayOptions {
  spoolDir: string;
  quarantineDir: string;
  /** The node's log folder (spoolLogDir). */
  logDir: string;
  quarantineLog: QuarantineRecorder;
  logger: Logger;
}

/**
 * At start, before the log is opened again: every instance this node's log sealed is filed again in
 * its study folder from the log's bytes, and flushed — its earlier copy may not have reached the disk
 * before a crash. Sealed instances are filed in the order they were sealed (a later copy of an
 * instance wins); what a crash cut off (never sealed, so never answered Success) is left out. An
 * instance that cannot be filed goes to the quarantine with the reason. Returns how many were filed.
 */
export async function replaySpoolLog(o: ReplayOptions): Promise<number> {
  const { instances, close } = replayLog(o.logDir);
  let filed = 0;
  try {
    const dirs = new DirectorySync();
    for (const inst of instances) {
      const request = inst.begin as unknown as SpoolRequest;
      const studyUid = String(inst.commit.studyInstanceUid);
      const incoming = join(o.spoolDir, "incoming", `${randomUUID()}.part`);
      try {
        if (!isValidUid(studyUid) || !isValidUid(request.sopInstanceUid)) throw new Error(`the log names study ${studyUid}, instance ${request.sopInstanceUid}`);
        const fh = await open(incoming, "w");
        try {
          await writeSpoolCopy(fh, part10Header({ ...request, sourceAeTitle: request.callingAeTitle }), inst.read());
          await fh.datasync();
        } finally {
          await fh.close();
        }
        const studyDir = join(o.spoolDir, studyUid);
        await mkdir(studyDir, { recursive: true });
        renameSync(incoming, join(studyDir, `${request.sopInstanceUid}.dcm`));
        await dirs.sync(studyDir);
        filed++;
      } catch (err) {
        const reason = `sealed in the spool log but cannot be filed: ${(err as Error).message}`;
        const kept = existsSync(incoming) ? join(o.quarantineDir, `${new Date().toISOString().replace(/[:.]/g, "-")}-${randomUUID().slice(0, 8)}.dcm`) : incoming;
        if (kept !== incoming) renameSync(incoming, kept);
        await o.quarantineLog.addQuarantine(kept, reason, studyUid);
        o.logger.error({ study: studyUid, sop: request.sopInstanceUid, err: (err as Error).message }, "spool log instance quarantined");
      }
    }
    if (filed) await dirs.sync(o.spoolDir);
  } finally {
    close();
  }
  if (filed) o.logger.info({ instances: filed }, "filed again the instances the spool log held");
  return filed;
}

/**
 * At start: records the spooled instances the store does not know (its last commits may have been
 * lost to a power cut; the spool files were durable before their Success). Spool copies are keyed by
 * study AND instance: one SOP Instance UID may have a copy in several study folders (re-sent under
 * another study), and only its newest copy is current — an older one is never recorded again, so a
 * stale copy cannot move the instance back to its former study. The node's log is replayed first
 * (replaySpoolLog), so what it held is filed and then recorded. Returns how many were recorded.
 */
export async function recoverSpooledInstances(records: IntakeStore, where: SpoolPlace, logger: Logger): Promise<number> {
  const { spoolDir } = where;
  if (!existsSync(spoolDir)) return 0;
  await replaySpoolLog({ spoolDir, quarantineDir: where.quarantineDir, logDir: spoolLogDir(spoolDir, where.nodeId), quarantineLog: records, logger });
  const copies = spooledCopies(spoolDir);
  const quarantined = new Set((await records.quarantined()).map((q) => q.path));
  let recovered = 0;
  for (const versions of copies.values()) {
    // Newest first; the first one that is known, recorded now, or quarantined before decides.
    for (const copy of versions.sort((a, b) => b.mtimeMs - a.mtimeMs)) {
      if (await records.hasInstanceAt(copy.path)) break;
      if (quarantined.has(copy.path)) continue;
      let instance: NewInstance;
      try {
        instance = instanceFromSpoolFile(copy.path);
      } catch (err) {
        // Left where it is, and listed with the quarantine (once) so that `cxr status` and the log show it.
        await records.addQuarantine(copy.path, `spool file not recoverable: ${(err as Error).message}`, copy.studyUid);
        logger.warn({ path: copy.path, err: (err as Error).message }, "spool file not recoverable");
        continue;
      }
      // A store that refuses the record fails the start: nothing is lost (the file stays), and nothing is hidden.
      await records.addInstance(instance);
      recovered++;
      break;
    }
  }
  if (recovered) logger.info({ instances: recovered }, "recorded spooled instances the store had lost");
  return recovered;
}

/** A spool folder, its quarantine folder and the node whose log is replayed. */
export interface SpoolPlace {
  spoolDir: string;
  quarantineDir: string;
  nodeId?: string;
}

interface SpoolCopy {
  path: string;
  studyUid: string;
  mtimeMs: number;
}

/** The spool's `<study>/<sop>.dcm` files, grouped by SOP Instance UID. */
function spooledCopies(spoolDir: string): Map<string, SpoolCopy[]> {
  const bySop = new Map<string, SpoolCopy[]>();
  for (const study of readdirSync(spoolDir, { withFileTypes: true })) {
    if (!study.isDirectory() || study.name === "incoming" || study.name === "log") continue;
    for (const name of readdirSync(join(spoolDir, study.name))) {
      if (!name.endsWith(".dcm")) continue;
      const path = join(spoolDir, study.name, name);
      const sop = name.slice(0, -".dcm".length);
      const list = bySop.get(sop) ?? [];
      list.push({ path, studyUid: study.name, mtimeMs: statSync(path).mtimeMs });
      bySop.set(sop, list);
    }
  }
  return bySop;
}

/** A spool file's record, read back from the file alone (recovery). */
export function instanceFromSpoolFile(path: string): NewInstance {
  const file = readDicom(path, { withPixelData: false });
  const header = extractHeader(file.dataset);
  const missing = missingUids(header);
  if (missing.length) throw new Error(`missing or invalid ${missing.join(", ")}`);
  const fileSize = statSync(path).size;
  const datasetOffset = part10DatasetOffset(readHead(path, 144));
  return spooledInstance(path, header, {
    transferSyntaxUid: file.transferSyntaxUid,
    datasetOffset,
    datasetSize: fileSize - datasetOffset,
    sha256: datasetSha256(path, datasetOffset),
    callingAeTitle: String(file.meta.SourceApplicationEntityTitle ?? "").trim(),
    sopClassUid: String(file.meta.MediaStorageSOPClassUID ?? "").replace(/\0/g, "").trim(),
  });
}

function readHead(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/** Writes all of `buffer` (a short write, which regular files only do when the disk is full, is continued). */
function writeAllSync(fd: number, buffer: Buffer): void {
  for (let from = 0; from < buffer.length; ) {
    const n = writeSync(fd, buffer, from, buffer.length - from);
    if (n === 0) throw new Error(`short write: ${from} of ${buffer.length} bytes`);
    from += n;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* the file is being abandoned after an error already recorded */
  }
}
