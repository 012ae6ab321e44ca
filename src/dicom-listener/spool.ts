/**
 * The spool: where received instances are kept, durably, before their C-STORE is answered Success.
 * Layout: `<spool>/incoming/<uuid>.part` while a data set arrives, `<spool>/<study>/<sop>.dcm` once
 * it is whole and checked, `<quarantine>/<time>-<id>.dcm` when it cannot be filed (the reason goes
 * to the quarantine log). Each spool file is the sender's data set, unchanged, behind a Part 10
 * header (part10.ts). The spool, not the store, is the durable record: recover() records again what
 * the store lost. Receiving and recovery describe an instance with the same function
 * (spooledInstance) and the same content hash (datasetSha256).
 */
import { randomUUID } from "node:crypto";
import { close, closeSync, existsSync, fdatasync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { mkdir } from "node:fs/promises";
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
  /**
   * Default true. false skips the fdatasync/fsync calls — ONLY for bench/ingest's diagnostic row
   * (how much of the time is the disk flush); success is then no longer a durability promise.
   */
  syncToDisk?: boolean;
  /** What one header may cost to parse (default: the configuration's defaults). */
  budget?: ParseBudget;
}

const STUDY_DIR_CACHE = 10_000;
const fdatasyncAsync = promisify(fdatasync);
const closeAsync = promisify(close);

/**
 * One C-STORE data set on its way to the spool: the Part 10 header first, then every PDV fragment
 * as it arrives (of the data set only its header is held in memory, at most maxHeaderBytes); its
 * content hash is computed afterwards (datasetSha256, in Spool.finish). The file is opened and
 * written on the main thread (`write` into the page cache, about 0.25 ms per MB): measured on the
 * bench machine, handing each fragment to the thread pool left 1.8 ms per 1 MB instance between its
 * last fragment and the end of its writes, as the writes queued behind the file system's journal
 * commits; written at once, the last fragment's write is done when it has arrived. Nothing is made
 * durable here: the one fdatasync comes after the last fragment (syncAndClose), started together
 * with the folder fsyncs so that they share one journal commit. A write error is remembered rather
 * than thrown so the association keeps its framing and the sender gets a failure status for this
 * instance.
 *
 * The header is measured against the parse budget as its bytes arrive (measureHeader, bounded
 * work, again each time the kept bytes have doubled) and parsed off the main thread
 * (HeaderParser) as soon as its end is known — usually from the first fragment, so that the parse
 * and the study folder's mkdir overlap the transfer. The file is never read back to find it.
 */
export class SpoolFile {
  size = 0;
  failure?: Error;
  /** The open spool file; undefined when it could not be opened or written (see `failure`) or once closed. */
  private fd?: number;
  readonly part10: Buffer;
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
    private readonly spool: { syncToDisk: boolean; budget: ParseBudget; parser: HeaderParser },
    /** Called once with the header when it is known before the last fragment (to prepare the study folder). */
    private readonly onEarlyHeader: (dataset: Record<string, unknown>) => void,
  ) {
    this.part10 = part10Header({ sopClassUid: request.sopClassUid, sopInstanceUid: request.sopInstanceUid, transferSyntaxUid: request.transferSyntaxUid, sourceAeTitle: request.callingAeTitle });
    this.encoding = datasetEncoding(request.transferSyntaxUid);
    try {
      this.fd = openSync(path, "w");
      writeAllSync(this.fd, this.part10);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** The next fragment of the data set, written to the file at once. */
  append(b: Buffer): void {
    this.size += b.length;
    if (this.measuring()) {
      if (this.headLength < this.spool.budget.maxHeaderBytes) {
        this.head.push(b);
        this.headLength += b.length;
      }
      if (this.headLength >= this.measureAt) this.measure(false);
    }
    if (this.fd === undefined) return;
    try {
      writeAllSync(this.fd, b);
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
      if (!this.encoding) this.parsed = this.spool.parser.parseFile(this.path);
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

  /**
   * Makes the bytes durable and closes the file. `fdatasync` rather than `fsync`: it writes the data
   * and the metadata needed to read it back (the file size and block allocation), leaving out only
   * timestamps; the directory entry is made durable separately (DirectorySync in Spool.finish).
   */
  async syncAndClose(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    try {
      if (this.spool.syncToDisk) await fdatasyncAsync(fd);
    } finally {
      await closeAsync(fd);
    }
  }

  /** Closes without syncing and removes the file (the instance is abandoned, e.g. cut off by the end of its association). */
  async discard(): Promise<void> {
    this.releaseHead();
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await closeAsync(fd);
    try {
      unlinkSync(this.path);
    } catch {
      /* already moved or never created */
    }
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

/** The facts about a spooled instance that its file does not say by its place in the spool. */
interface SpooledFacts {
  transferSyntaxUid: string;
  /** Where the data set starts in the file (after the Part 10 header). */
  datasetOffset: number;
  /** Bytes of the data set (the file's size less `datasetOffset`). */
  datasetSize: number;
  callingAeTitle: string;
  /** The SOP class when the header does not name one (the C-STORE's Affected SOP Class). */
  sopClassUid: string;
}

/**
 * The one description of a spooled instance, for receiving and for recovery alike: its record
 * from its header and its file, with the content hash of its data set bytes (which keys "already
 * processed" and the result UIDs, so it must never be computed two ways).
 */
export function spooledInstance(path: string, header: ReceivedHeader, facts: SpooledFacts): NewInstance {
  return {
    sopInstanceUid: header.sopInstanceUid!,
    sopClassUid: header.sopClassUid ?? facts.sopClassUid,
    studyInstanceUid: header.studyInstanceUid!,
    seriesInstanceUid: header.seriesInstanceUid!,
    transferSyntaxUid: facts.transferSyntaxUid,
    path,
    sha256: datasetSha256(path, facts.datasetOffset),
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

export class Spool {
  readonly incomingDir: string;
  private readonly spoolDir: string;
  private readonly quarantineDir: string;
  readonly syncToDisk: boolean;
  readonly budget: ParseBudget;
  readonly parser: HeaderParser;
  private readonly directorySync = new DirectorySync();
  /**
   * Study folders by study UID: `made` once the folder exists (mkdir started as soon as an
   * instance's header is known, usually from its first fragment, so it overlaps the transfer);
   * `durable` once an fsync of the spool folder that started after the mkdir has finished (its entry
   * there is on disk). `durable` is started only after the first instance has been renamed into the
   * folder, together with that instance's own fdatasync and the study folder's fsync: the three wait
   * for the same file system journal commit instead of one commit each, one after the other (a new
   * study per instance is the usual case for chest X-rays).
   */
  private readonly studyDirs = new Map<string, StudyDir>();

  constructor(private readonly opts: SpoolOptions) {
    this.spoolDir = opts.spoolDir;
    this.quarantineDir = opts.quarantineDir;
    this.syncToDisk = opts.syncToDisk ?? true;
    this.budget = opts.budget ?? parseBudgetSchema.parse({});
    this.parser = new HeaderParser({ timeoutMs: this.budget.timeoutSeconds * 1000 });
    this.incomingDir = join(this.spoolDir, "incoming");
    mkdirSync(this.incomingDir, { recursive: true });
    mkdirSync(this.quarantineDir, { recursive: true });
    // Partial receptions of a process that died mid-transfer: never acknowledged, so the sender resends them.
    for (const f of readdirSync(this.incomingDir)) if (f.endsWith(".part")) unlinkSync(join(this.incomingDir, f));
  }

  /** A data set starts arriving: its spool file in `incoming`. */
  receive(request: SpoolRequest): SpoolFile {
    return new SpoolFile(join(this.incomingDir, `${randomUUID()}.part`), request, this, (dataset) => this.prepareStudyDirEarly(dataset));
  }

  /** Resolves once the header parser's workers are ready (the listener opens its port after that). */
  ready(): Promise<void> {
    return this.parser.warm();
  }

  /** Stops the header parser (after the listener's last instance). */
  close(): Promise<void> {
    return this.parser.close();
  }

  /**
   * After the last fragment: check the header (parsed when its first fragments arrived, else now),
   * move the file into its study folder, make it durable while its content hash is computed. A
   * Success result is durable; recording it is the caller's.
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
    let header: ReceivedHeader;
    try {
      header = extractHeader(await w.headerDataset());
    } catch (err) {
      await w.syncAndClose().catch(() => undefined);
      if (err instanceof ParseBudgetError) {
        this.quarantine(w.path, `instance ${request.sopInstanceUid} from ${callingAe}: header over the parse budget: ${err.message}`);
        return { status: STORE_STATUS.cannotUnderstand, comment: "header over the parse budget" };
      }
      this.quarantine(w.path, `unreadable dataset from ${callingAe}: ${(err as Error).message}`);
      return { status: STORE_STATUS.cannotUnderstand, comment: "dataset cannot be parsed" };
    }
    const refusal = this.checkIdentity(header, request);
    if (refusal) {
      await w.syncAndClose().catch(() => undefined);
      this.quarantine(w.path, refusal.reason, header.studyInstanceUid);
      return refusal.result;
    }
    const studyUid = header.studyInstanceUid!;
    const studyDir = join(this.spoolDir, studyUid);
    const finalPath = join(studyDir, `${header.sopInstanceUid}.dcm`);
    try {
      let studyDirEntry = this.prepareStudyDir(studyUid);
      await studyDirEntry.made;
      // Durability before success: the answer goes out only after (a) the file's bytes and size are
      // on disk (fdatasync), (b) its directory entry in the study folder is on disk (an fsync of the
      // folder that started after the rename; concurrent instances of the study share one) and (c)
      // the study folder's entry in the spool folder is on disk (studyDirDurable, once per folder).
      // All three start together, after the rename, and wait for the same journal commit. The store
      // commit (WAL, synchronous=NORMAL) may be lost to a power cut, which is why recover() re-records
      // the spool at start: the spool, not the store, is the durable record.
      try {
        renameSync(w.path, finalPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        // The study folder went away after it was prepared (removed by an operator or a retention
        // job): make it again, durably, and move the file in.
        this.studyDirs.delete(studyUid);
        studyDirEntry = this.prepareStudyDir(studyUid);
        await studyDirEntry.made;
        renameSync(w.path, finalPath);
      }
      const syncing = Promise.all([w.syncAndClose(), this.syncDirectory(studyDir), this.studyDirDurable(studyDirEntry)]);
      let instance: NewInstance;
      try {
        // The hash is computed on the main thread while the syncs run on the thread pool (see datasetSha256).
        instance = spooledInstance(finalPath, header, { transferSyntaxUid: request.transferSyntaxUid, datasetOffset: w.part10.length, datasetSize: w.size, callingAeTitle: callingAe, sopClassUid: request.sopClassUid });
      } finally {
        await syncing;
      }
      return { status: STORE_STATUS.success, instance };
    } catch (err) {
      logger.error({ err: (err as Error).message, sop: header.sopInstanceUid, study: studyUid }, "cannot spool received instance");
      await w.discard().catch(() => undefined);
      return { status: STORE_STATUS.outOfResources, comment: `cannot spool instance: ${(err as Error).message}`.slice(0, 64) };
    }
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
  quarantine(tempPath: string, reason: string, studyUid?: string): void {
    let kept = join(this.quarantineDir, `${new Date().toISOString().replace(/[:.]/g, "-")}-${randomUUID().slice(0, 8)}.dcm`);
    try {
      renameSync(tempPath, kept);
    } catch (err) {
      // The record names where the bytes really are (or that they are gone), not a path that was never made.
      reason = `${reason} (not moved to the quarantine: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
      kept = tempPath;
    }
    // The file is kept either way; a log entry the store refuses is said in the service log instead.
    this.opts.quarantineLog.addQuarantine(kept, reason, studyUid).catch((err: Error) => this.opts.logger.error({ path: kept, err: err.message }, "cannot record a quarantined instance"));
    this.opts.logger.warn({ path: kept, reason, study: studyUid }, "instance quarantined");
  }

  private syncDirectory(dir: string): Promise<void> {
    return this.syncToDisk ? this.directorySync.sync(dir) : Promise.resolve();
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
      const sync = this.syncDirectory(this.spoolDir);
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

/**
 * At start: records the spooled instances the store does not know (its last commits may have been
 * lost to a power cut; the spool files were durable before their Success). Spool copies are keyed by
 * study AND instance: one SOP Instance UID may have a copy in several study folders (re-sent under
 * another study), and only its newest copy is current — an older one is never recorded again, so a
 * stale copy cannot move the instance back to its former study. Returns how many were recorded.
 */
export async function recoverSpooledInstances(records: IntakeStore, spoolDir: string, logger: Logger): Promise<number> {
  if (!existsSync(spoolDir)) return 0;
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

interface SpoolCopy {
  path: string;
  studyUid: string;
  mtimeMs: number;
}

/** The spool's `<study>/<sop>.dcm` files, grouped by SOP Instance UID. */
function spooledCopies(spoolDir: string): Map<string, SpoolCopy[]> {
  const bySop = new Map<string, SpoolCopy[]>();
  for (const study of readdirSync(spoolDir, { withFileTypes: true })) {
    if (!study.isDirectory() || study.name === "incoming") continue;
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
