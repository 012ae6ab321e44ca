import { randomUUID } from "node:crypto";
import { close, closeSync, fdatasync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer as createTcpServer, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { promisify } from "node:util";
import dimse from "dcmjs-dimse";
import type { association, requests, responses } from "dcmjs-dimse";

type Association = association.Association;
type CEchoRequest = requests.CEchoRequest;
type CEchoResponse = responses.CEchoResponse;
import type { Logger } from "pino";
import type { ListenerConfig } from "../config/service.ts";
import { SOP_CLASS } from "../config/service.ts";
import { parseDicom, readDicom } from "../dicom/read.ts";
import { isValidUid } from "../dicom/uid.ts";
import { extractHeader } from "../intake/header.ts";
import type { IntakeStore } from "../store/roles.ts";
import type { InstanceOutcome, NewInstance } from "../store/types.ts";
import { datasetSha256 } from "./content-hash.ts";
import { DirectorySync } from "./dir-sync.ts";
import { pixelDataOffset } from "./header-extent.ts";
import { encodeStoreResponsePdu } from "./store-response.ts";
import { ABORT_REASON, abortPdu, PDU_TYPE, PduReader, PduTooLongError, splitPDataTf, type PresentationDataValue } from "./pdu-reader.ts";
import { COMMAND_FIELD, parseCommandSet, type CommandSet } from "./command-set.ts";
import { part10Header } from "./part10.ts";

const { Scp } = dimse;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason, TransferSyntax } = dimse.constants;
const { CEchoResponse: CEchoResponseClass } = dimse.responses;
// dcmjs-dimse logs every PDU through loglevel to the console; the service logs its own events.
dimse.log.setLevel((process.env.CXR_DIMSE_LOG ?? "silent") as "silent");

/** C-STORE statuses used here (PS3.4 B.2.3 / PS3.7 C). */
export const STORE_STATUS = {
  success: 0x0000,
  /** Refused: Out of Resources — the instance could not be written or recorded. */
  outOfResources: 0xa700,
  /** Error: Data Set does not match SOP Class — required identifying attributes missing or invalid. */
  datasetMismatch: 0xa900,
  /** Error: Cannot understand — the dataset cannot be parsed. */
  cannotUnderstand: 0xc000,
  /** Refused: SOP Class not supported. */
  sopClassNotSupported: 0x0122,
} as const;

export interface StoredInstance {
  sopInstanceUid: string;
  studyInstanceUid: string;
  path: string;
  outcome: InstanceOutcome;
  callingAeTitle: string;
}

export interface ListenerOptions {
  config: ListenerConfig;
  store: IntakeStore;
  /** Where received instances are written (spool/<study>/<sop>.dcm). */
  spoolDir: string;
  /** Where unreadable instances are kept, with their reason recorded in the store. */
  quarantineDir: string;
  logger: Logger;
  /** After an instance is on disk and recorded, before the success answer goes out. */
  onStored?: (inst: StoredInstance) => void;
  /** An association ended; `studies` are the studies it delivered instances of (with the count it delivered). */
  onAssociationEnded?: (studies: Map<string, number>) => void;
  /**
   * Default true. false skips the fdatasync/fsync calls — ONLY for bench/ingest's diagnostic row
   * (how much of the time is the disk flush); success is then no longer a durability promise.
   */
  syncToDisk?: boolean;
}

export interface DicomListener {
  readonly port: number;
  readonly host: string;
  /** Open associations right now. */
  activeAssociations(): number;
  close(): Promise<void>;
}

/** The parts of dcmjs-dimse's Network (not in its typings) that CxrScp.replacePduAccumulator drives. */
interface DimseNetworkInternals {
  lastPduTime?: number;
  statistics: { addBytesReceived(n: number): void; addBytesSent(n: number): void };
  _reset(): void;
  emit(event: "networkError", err: Error): unknown;
  _processPdu(pdu: Buffer): Promise<void>;
  _processPDataTf(pdu: { getPdvs(): PresentationDataValue[] }): Promise<void>;
}

interface StoreResult {
  status: number;
  comment?: string;
}

/** A C-STORE-RQ as the listener reads it (command-set.ts), with the presentation context it came on. */
interface StoreCommand {
  messageId: number;
  affectedSopClassUid: string;
  affectedSopInstanceUid: string;
  presentationContextId: number;
}

/**
 * One C-STORE data set on its way to the spool: the Part 10 header first, then every PDV fragment
 * as it arrives (nothing of the size of the image is held in memory); its content hash is computed
 * afterwards (datasetSha256, in finishInstance). The file is opened and written on the main thread
 * (`write` into the page cache, about 0.25 ms per MB): measured on the bench machine, handing each
 * fragment to the thread pool left 1.8 ms per 1 MB instance between its last fragment and the end
 * of its writes, as the writes queued behind the file system's journal commits; written at once,
 * the last fragment's write is done when it has arrived. Nothing is made durable here: the one
 * fdatasync comes after the last fragment (syncAndClose), started together with the folder fsyncs
 * so that they share one journal commit. A write error is remembered rather than thrown so the
 * association keeps its framing and the sender gets a failure status for this instance.
 */
class SpoolFile {
  size = 0;
  failure?: Error;
  /** The open spool file; undefined when it could not be opened or written (see `failure`) or once closed. */
  private fd?: number;

  /** The first dataset bytes (up to HEAD_LIMIT), kept to parse the header without reading the file back. */
  readonly head: Buffer[] = [];
  headLength = 0;
  /** The header (everything before the top-level Pixel Data), parsed as soon as the head holds all of it. */
  earlyDataset?: Record<string, unknown>;

  constructor(
    readonly path: string,
    readonly part10: Buffer,
    /** The C-STORE-RQ whose data set this is (its answer goes back on its presentation context). */
    readonly command: StoreCommand,
    readonly transferSyntaxUid: string,
    private readonly syncToDisk: boolean,
    /** Called once with the header when it is known before the last fragment (to prepare the study folder). */
    private readonly onEarlyHeader: (dataset: Record<string, unknown>) => void,
  ) {
    try {
      this.fd = openSync(path, "w");
      writeAllSync(this.fd, part10);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** The next fragment of the data set, written to the file at once. */
  append(b: Buffer): void {
    this.size += b.length;
    if (!this.earlyDataset && this.headLength < HEAD_LIMIT) {
      this.head.push(b);
      this.headLength += b.length;
      this.earlyDataset = headerFromHead(this, false);
      if (this.earlyDataset) {
        // Let the fragments go now rather than with the instance: buffers that outlive a young-generation
        // collection are only freed by full (mark-compact) ones, which their external memory then triggers.
        this.head.length = 0;
        this.onEarlyHeader(this.earlyDataset);
      }
    }
    if (this.fd === undefined) return;
    try {
      writeAllSync(this.fd, b);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
  }

  /**
   * Makes the bytes durable and closes the file. `fdatasync` rather than `fsync`: it writes the data
   * and the metadata needed to read it back (the file size and block allocation), leaving out only
   * timestamps; the directory entry is made durable separately (DirectorySync in finishInstance).
   */
  async syncAndClose(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    try {
      if (this.syncToDisk) await fdatasyncAsync(fd);
    } finally {
      await closeAsync(fd);
    }
  }

  /** Closes without syncing (the instance is discarded). */
  async discard(): Promise<void> {
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

const HEAD_LIMIT = 256 * 1024;
const STUDY_DIR_CACHE = 10_000;

interface StudyDir {
  made: Promise<string>;
  durable?: Promise<void>;
}
const LITTLE_ENDIAN_SYNTAXES_WITHOUT_DEFLATE = (ts: string) => ts !== "1.2.840.10008.1.2.2" && ts !== "1.2.840.10008.1.2.1.99";

/**
 * The received header (everything before the top-level Pixel Data) from the bytes kept in memory;
 * undefined when they do not hold all of it (the caller then reads the file).
 */
function headerFromHead(w: SpoolFile, complete: boolean): Record<string, unknown> | undefined {
  if (!LITTLE_ENDIAN_SYNTAXES_WITHOUT_DEFLATE(w.transferSyntaxUid)) return undefined;
  // Usually the head is the first fragment alone: used as it is rather than copied.
  const head = w.head.length === 1 ? w.head[0]! : Buffer.concat(w.head, w.headLength);
  let datasetEnd: number | undefined = head.length;
  // Before the last fragment (complete false) the dataset may go on past the head: only a header
  // that ends at the top-level Pixel Data is known to be whole.
  if (!complete || w.size > head.length) {
    datasetEnd = pixelDataOffset(head, w.transferSyntaxUid !== "1.2.840.10008.1.2");
    if (datasetEnd === undefined) return undefined;
  }
  const bytes = Buffer.concat([w.part10, head.subarray(0, datasetEnd)]);
  try {
    return parseDicom(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), w.path, { withPixelData: false }).dataset;
  } catch {
    return undefined; // the file read gives the definitive answer (and error)
  }
}

const fdatasyncAsync = promisify(fdatasync);
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
const closeAsync = promisify(close);
/** The peer's address, IPv4-mapped IPv6 written as plain IPv4 (as the allowed-hosts configuration lists it). */
const peerAddress = (socket: Socket) => (socket.remoteAddress ?? "").replace(/^::ffff:/, "");

export function startListener(opts: ListenerOptions): Promise<DicomListener> {
  const { config, store, spoolDir, quarantineDir, logger } = opts;
  const syncToDisk = opts.syncToDisk ?? true;
  const directorySync = new DirectorySync();
  const syncDirectory = (dir: string) => (syncToDisk ? directorySync.sync(dir) : Promise.resolve());
  /**
   * Study folders by study UID: `made` once the folder exists (mkdir started as soon as an
   * instance's header is known, usually from its first fragment, so it overlaps the transfer);
   * `durable` once an fsync of the spool folder that started after the mkdir has finished (its entry
   * there is on disk). `durable` is started only after the first instance has been renamed into the
   * folder, together with that instance's own fdatasync and the study folder's fsync: the three wait
   * for the same file system journal commit instead of one commit each, one after the other (a new
   * study per instance is the usual case for chest X-rays).
   */
  const studyDirs = new Map<string, StudyDir>();
  function prepareStudyDir(studyUid: string): StudyDir {
    let entry = studyDirs.get(studyUid);
    if (!entry) {
      const dir = join(spoolDir, studyUid);
      const made = mkdir(dir, { recursive: true }).then(() => dir);
      const created: StudyDir = { made };
      // Tried again by the next instance; only this attempt is forgotten, never a newer one that replaced it.
      made.catch(() => {
        if (studyDirs.get(studyUid) === created) studyDirs.delete(studyUid);
      });
      studyDirs.set(studyUid, created);
      entry = created;
      // Only recent studies matter (their instances arrive together); forgetting an old one costs a
      // mkdir and an fsync of the spool folder if it ever gets more instances.
      if (studyDirs.size > STUDY_DIR_CACHE) studyDirs.delete(studyDirs.keys().next().value!);
    }
    return entry;
  }
  /** The fsync that makes the study folder's entry durable: shared by its instances, started again after a failure. */
  function studyDirDurable(entry: StudyDir): Promise<void> {
    if (!entry.durable) {
      const sync = syncDirectory(spoolDir);
      entry.durable = sync;
      sync.catch(() => {
        if (entry.durable === sync) entry.durable = undefined;
      });
    }
    return entry.durable;
  }
  function prepareStudyDirEarly(dataset: Record<string, unknown>): void {
    const studyUid = typeof dataset.StudyInstanceUID === "string" ? dataset.StudyInstanceUID : undefined;
    // Only a valid UID names a folder (it is a path component); anything else waits for finishInstance's checks.
    if (studyUid && isValidUid(studyUid)) prepareStudyDir(studyUid);
  }
  const incomingDir = join(spoolDir, "incoming");
  mkdirSync(incomingDir, { recursive: true });
  mkdirSync(quarantineDir, { recursive: true });
  // Partial receptions of a process that died mid-transfer: never acknowledged, so the sender resends them.
  for (const f of readdirSync(incomingDir)) if (f.endsWith(".part")) unlinkSync(join(incomingDir, f));
  const accepted = new Set(config.acceptedSopClasses);
  const syntaxes = new Set(config.acceptedTransferSyntaxes);
  const allowedCalling = new Set(config.allowedCallingAeTitles.map((a) => a.trim()));
  const ourAe = config.aeTitle.trim();
  let active = 0;
  const sockets = new Set<Socket>();
  /** Instances between their last fragment and their store record: close() lets them finish before the store goes. */
  const finishing = new Set<Promise<unknown>>();

  function quarantine(tempPath: string, reason: string, studyUid?: string): void {
    let kept = join(quarantineDir, `${new Date().toISOString().replace(/[:.]/g, "-")}-${randomUUID().slice(0, 8)}.dcm`);
    try {
      renameSync(tempPath, kept);
    } catch (err) {
      // The record names where the bytes really are (or that they are gone), not a path that was never made.
      reason = `${reason} (not moved to the quarantine: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
      kept = tempPath;
    }
    store.addQuarantine(kept, reason, studyUid).catch((err: Error) => logger.error({ path: kept, err: err.message }, "cannot record a quarantined instance"));
    logger.warn({ path: kept, reason, study: studyUid }, "instance quarantined");
  }

  /**
   * After the last fragment: check the header (parsed when its first fragments arrived, else now),
   * move the file into its study folder, make it durable while its content hash is computed, record it.
   */
  async function finishInstance(w: SpoolFile, callingAe: string): Promise<StoreResult & { stored?: StoredInstance }> {
    const request = w.command;
    if (w.failure) {
      await w.discard();
      logger.error({ err: w.failure.message, sop: request.affectedSopInstanceUid }, "cannot write received instance");
      return { status: STORE_STATUS.outOfResources, comment: `cannot write instance: ${w.failure.message}`.slice(0, 64) };
    }
    let header;
    try {
      header = extractHeader(w.earlyDataset ?? headerFromHead(w, true) ?? readDicom(w.path, { withPixelData: false }).dataset);
    } catch (err) {
      await w.syncAndClose().catch(() => undefined);
      quarantine(w.path, `unreadable dataset from ${callingAe}: ${(err as Error).message}`);
      return { status: STORE_STATUS.cannotUnderstand, comment: "dataset cannot be parsed" };
    }
    const sop = header.sopInstanceUid;
    const missing = (["studyInstanceUid", "seriesInstanceUid", "sopInstanceUid"] as const).filter((k) => !header[k] || !isValidUid(header[k]!));
    const sopMismatch = sop !== request.affectedSopInstanceUid;
    // The spool file's meta header carries the C-STORE's class: a dataset of another class would make it inconsistent.
    const affectedClass = request.affectedSopClassUid;
    const classMismatch = header.sopClassUid !== undefined && header.sopClassUid !== affectedClass;
    if (missing.length || sopMismatch || classMismatch) await w.syncAndClose().catch(() => undefined);
    if (missing.length) {
      quarantine(w.path, `instance ${sop ?? "(no SOP Instance UID)"} from ${callingAe}: missing or invalid ${missing.join(", ")}`, header.studyInstanceUid);
      return { status: STORE_STATUS.datasetMismatch, comment: `missing or invalid ${missing.join(", ")}`.slice(0, 64) };
    }
    if (sopMismatch) {
      quarantine(w.path, `instance ${sop}: SOP Instance UID differs from the C-STORE's Affected SOP Instance UID`, header.studyInstanceUid);
      return { status: STORE_STATUS.datasetMismatch, comment: "SOP Instance UID mismatch" };
    }
    if (classMismatch) {
      quarantine(w.path, `instance ${sop}: SOP Class UID ${header.sopClassUid} differs from the C-STORE's Affected SOP Class UID ${affectedClass}`, header.studyInstanceUid);
      return { status: STORE_STATUS.datasetMismatch, comment: "SOP Class UID mismatch" };
    }
    const studyUid = header.studyInstanceUid!;
    const studyDir = join(spoolDir, studyUid);
    const finalPath = join(studyDir, `${sop}.dcm`);
    const inst: Omit<NewInstance, "sha256"> = {
      sopInstanceUid: sop!,
      sopClassUid: header.sopClassUid ?? affectedClass,
      studyInstanceUid: studyUid,
      seriesInstanceUid: header.seriesInstanceUid!,
      transferSyntaxUid: w.transferSyntaxUid,
      path: finalPath,
      size: w.size,
      callingAeTitle: callingAe,
      header: header.header,
      patientName: header.patientName,
      patientId: header.patientId,
      accessionNumber: header.accessionNumber,
      studyDescription: header.studyDescription,
    };
    try {
      let studyDirEntry = prepareStudyDir(studyUid);
      await studyDirEntry.made;
      // Durability before success: the answer goes out only after (a) the file's bytes and size are
      // on disk (fdatasync), (b) its directory entry in the study folder is on disk (an fsync of the
      // folder that started after the rename; concurrent instances of the study share one) and (c)
      // the study folder's entry in the spool folder is on disk (studyDirDurable, once per folder).
      // All three start together, after the rename, and wait for the same journal commit. The store
      // commit (WAL, synchronous=NORMAL) may be lost to a power cut, which is why recoverSpool()
      // re-records the spool at start: the spool, not SQLite, is the durable record.
      try {
        renameSync(w.path, finalPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        // The study folder went away after it was prepared (removed by an operator or a retention
        // job): make it again, durably, and move the file in.
        studyDirs.delete(studyUid);
        studyDirEntry = prepareStudyDir(studyUid);
        await studyDirEntry.made;
        renameSync(w.path, finalPath);
      }
      const syncing = Promise.all([w.syncAndClose(), syncDirectory(studyDir), studyDirDurable(studyDirEntry)]);
      let sha256: string;
      try {
        // On the main thread while the syncs run on the thread pool (see datasetSha256).
        sha256 = datasetSha256(finalPath, w.part10.length);
      } finally {
        await syncing;
      }
      const outcome = await store.addInstance({ ...inst, sha256 });
      const stored: StoredInstance = { sopInstanceUid: sop!, studyInstanceUid: studyUid, path: finalPath, outcome, callingAeTitle: callingAe };
      return { status: STORE_STATUS.success, stored };
    } catch (err) {
      logger.error({ err: (err as Error).message, sop, study: studyUid }, "cannot record received instance");
      await w.discard().catch(() => undefined);
      return { status: STORE_STATUS.outOfResources, comment: `cannot record instance: ${(err as Error).message}`.slice(0, 64) };
    }
  }

  class CxrScp extends Scp {
    private association?: Association;
    private readonly peer: string;
    private readonly socket: Socket | TLSSocket;
    private readonly delivered = new Map<string, number>();
    private counted = false;
    /** Fragments of the command set being received (a command may span several PDVs). */
    private commandFragments: PresentationDataValue[] = [];
    /** The C-STORE whose data set is arriving: its spool file, or undefined while it is refused (SOP class). */
    private storing?: { command: StoreCommand; file?: SpoolFile; refusal?: StoreResult };

    constructor(socket: Socket | TLSSocket, scpOpts: Record<string, unknown>) {
      super(socket, scpOpts);
      this.socket = socket;
      this.replacePduAccumulator(socket);
      this.peer = peerAddress(socket);
      this.on("close", () => {
        if (this.counted) active--;
        this.counted = false;
        // A data set cut off by the end of the association was never acknowledged: its partial file goes (and its descriptor).
        const cutOff = this.storing?.file;
        this.storing = undefined;
        if (cutOff) void cutOff.discard().catch(() => undefined);
        if (this.delivered.size) opts.onAssociationEnded?.(new Map(this.delivered));
        this.delivered.clear();
      });
    }

    /**
     * dcmjs-dimse's constructor wired its own accumulator to the socket's "data" event (the only
     * listener at this point); it is replaced by PduReader (see there for why). P-DATA-TF PDUs are
     * split into PDVs here and handled in order, one after the other (handlePData); every other PDU
     * goes to dcmjs-dimse's own PDU handling unchanged.
     */
    private replacePduAccumulator(socket: Socket | TLSSocket): void {
      const net = this as unknown as DimseNetworkInternals;
      for (const l of socket.listeners("data")) socket.removeListener("data", l as (...args: unknown[]) => void);
      let inOrder: Promise<void> = Promise.resolve();
      const reader = new PduReader(
        (type, pdu) => {
          net.lastPduTime = Date.now();
          if (type === PDU_TYPE.pDataTf) {
            let pdvs: PresentationDataValue[];
            try {
              pdvs = splitPDataTf(pdu);
            } catch (err) {
              net.emit("networkError", err as Error);
              return;
            }
            inOrder = inOrder.then(() => this.handlePData(pdvs)).catch((err: Error) => {
              // A protocol error from the peer (a malformed command, a PDV on no accepted context): the association ends.
              if (!socket.destroyed) socket.write(abortPdu(ABORT_REASON.invalidPduParameterValue));
              net._reset();
              net.emit("networkError", err);
            });
          } else {
            inOrder = inOrder.then(() => net._processPdu(pdu));
          }
        },
        (err) => {
          // A-ABORT from the service provider, "invalid PDU parameter value" for a length over the
          // limit, "unrecognized PDU" otherwise; then the socket is closed.
          if (!socket.destroyed) socket.write(abortPdu(err instanceof PduTooLongError ? ABORT_REASON.invalidPduParameterValue : ABORT_REASON.unrecognizedPdu));
          net._reset();
          net.emit("networkError", new Error(`connection error: ${err.message}`));
        },
        { maxPDataLength: config.maxPduLength },
      );
      socket.on("data", (chunk: Buffer) => {
        reader.push(chunk);
        net.statistics.addBytesReceived(chunk.length);
      });
    }

    override associationRequested(association: Association): void {
      this.association = association;
      const calling = association.getCallingAeTitle().trim();
      const called = association.getCalledAeTitle().trim();
      const reject = (result: number, source: number, reason: number, why: string) => {
        logger.warn({ calling, called, peer: this.peer, reason: why }, "association rejected");
        this.sendAssociationReject(result, source, reason);
      };
      if (config.checkCalledAeTitle && called !== ourAe) {
        return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized, `called AE "${called}" is not ${ourAe}`);
      }
      if (allowedCalling.size && !allowedCalling.has(calling)) {
        return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized, `calling AE "${calling}" is not allowed`);
      }
      const hosts = config.allowedHosts[calling];
      if (hosts && !hosts.includes(this.peer)) {
        return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized, `calling AE "${calling}" is not allowed from ${this.peer}`);
      }
      if (active >= config.maxAssociations) {
        return reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.LocalLimitExceeded, `${active} associations open (maxAssociations ${config.maxAssociations})`);
      }
      active++;
      this.counted = true;
      if (config.maxPduLength > 0) association.setMaxPduLength(config.maxPduLength);
      for (const c of association.getPresentationContexts()) {
        const context = association.getPresentationContext(c.id);
        const abstract = context.getAbstractSyntaxUid();
        const proposed = context.getTransferSyntaxUids();
        if (abstract === SOP_CLASS.VERIFICATION) {
          const ts = proposed.find((t: string) => t === TransferSyntax.ImplicitVRLittleEndian || t === TransferSyntax.ExplicitVRLittleEndian);
          if (ts) context.setResult(PresentationContextResult.Accept, ts);
          else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
        } else if (accepted.has(abstract)) {
          // As proposed: the first syntax the sender offers that we can decode — never a transcode.
          const ts = proposed.find((t: string) => syntaxes.has(t));
          if (ts) context.setResult(PresentationContextResult.Accept, ts);
          else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
        } else {
          context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
        }
      }
      logger.debug({ calling, peer: this.peer }, "association accepted");
      this.sendAssociationAccept();
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
    }

    override abort(): void {
      // The peer gave up on the association: nothing it sent in flight is acknowledged, so close.
      this.socket.end();
    }

    override cEchoRequest(request: CEchoRequest, callback: (response: CEchoResponse) => void): void {
      const response = CEchoResponseClass.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }

    /**
     * P-DATA: C-STORE-RQ commands and their data sets are handled here; every other command (C-ECHO)
     * goes to dcmjs-dimse's P-DATA handling as it arrived. dcmjs-dimse parsed each C-STORE command
     * into a dcmjs dataset and pushed every fragment through its request objects and a promise per
     * PDV — about 0.4 ms of main-thread time per instance, on the way to every answer.
     */
    private async handlePData(pdvs: PresentationDataValue[]): Promise<void> {
      const net = this as unknown as DimseNetworkInternals;
      let forward: PresentationDataValue[] = [];
      const flush = async () => {
        if (!forward.length) return;
        const batch = forward;
        forward = [];
        await net._processPDataTf({ getPdvs: () => batch });
      };
      for (const pdv of pdvs) {
        if (this.storing) {
          if (pdv.isCommand()) throw new Error("a command arrived while a C-STORE data set was still arriving");
          if (pdv.getPresentationContextId() !== this.storing.command.presentationContextId) throw new Error("a C-STORE data set fragment arrived on another presentation context");
          this.storing.file?.append(pdv.getValue());
          if (pdv.isLastFragment()) {
            this.finishStore(this.storing);
            this.storing = undefined;
          }
          continue;
        }
        if (!pdv.isCommand()) {
          forward.push(pdv); // the data set of a command dcmjs-dimse handles
          continue;
        }
        this.commandFragments.push(pdv);
        if (!pdv.isLastFragment()) continue;
        const fragments = this.commandFragments;
        this.commandFragments = [];
        const command = parseCommandSet(fragments.length === 1 ? fragments[0]!.getValue() : Buffer.concat(fragments.map((f) => f.getValue())));
        if (command.commandField !== COMMAND_FIELD.cStoreRq) {
          forward.push(...fragments);
          continue;
        }
        await flush();
        this.storing = this.beginStore(command, pdv.getPresentationContextId());
      }
      await flush();
    }

    /** A C-STORE-RQ has arrived: its data set goes to a new spool file (or is read and dropped when the SOP class is refused). */
    private beginStore(c: CommandSet, presentationContextId: number): NonNullable<CxrScp["storing"]> {
      const context = this.association?.getPresentationContext(presentationContextId);
      if (!context || context.getResult() !== PresentationContextResult.Accept) throw new Error(`C-STORE on presentation context ${presentationContextId}, which was not accepted`);
      if (c.messageId === undefined || !c.affectedSopClassUid || !c.affectedSopInstanceUid || !c.hasDataSet) {
        throw new Error("C-STORE-RQ without Message ID, Affected SOP Class/Instance UID or data set");
      }
      const command: StoreCommand = { messageId: c.messageId, affectedSopClassUid: c.affectedSopClassUid, affectedSopInstanceUid: c.affectedSopInstanceUid, presentationContextId };
      if (!accepted.has(command.affectedSopClassUid)) {
        return { command, refusal: { status: STORE_STATUS.sopClassNotSupported, comment: "SOP Class not accepted" } };
      }
      const transferSyntaxUid = context.getAcceptedTransferSyntaxUid() ?? TransferSyntax.ImplicitVRLittleEndian;
      const file = new SpoolFile(
        join(incomingDir, `${randomUUID()}.part`),
        part10Header({ sopClassUid: command.affectedSopClassUid, sopInstanceUid: command.affectedSopInstanceUid, transferSyntaxUid, sourceAeTitle: this.association?.getCallingAeTitle() ?? "" }),
        command,
        transferSyntaxUid,
        syncToDisk,
        prepareStudyDirEarly,
      );
      return { command, file };
    }

    /** The last fragment is in: make the instance durable and record it (finishInstance), then answer. */
    private finishStore({ command, file, refusal }: NonNullable<CxrScp["storing"]>): void {
      if (!file) return this.answerStore(command, refusal!);
      const callingAe = this.association?.getCallingAeTitle().trim() ?? "";
      const finished: Promise<void> = finishInstance(file, callingAe)
        .then((r) => {
          if (r.stored) {
            this.delivered.set(r.stored.studyInstanceUid, (this.delivered.get(r.stored.studyInstanceUid) ?? 0) + 1);
            opts.onStored?.(r.stored);
          }
          return r;
        })
        .catch((err: Error): StoreResult => {
          // finishInstance answers its own failures; this is one of its bookkeeping (quarantine record, onStored).
          logger.error({ err: err.message, sop: command.affectedSopInstanceUid, calling: callingAe }, "cannot finish received instance");
          return { status: STORE_STATUS.outOfResources, comment: err.message.slice(0, 64) };
        })
        .then((r) => this.answerStore(command, r))
        .finally(() => finishing.delete(finished));
      finishing.add(finished);
    }

    private answerStore(command: StoreCommand, result: StoreResult): void {
      if (this.socket.destroyed) return; // the peer is gone; it resends what it got no answer for
      const pdu = encodeStoreResponsePdu({
        presentationContextId: command.presentationContextId,
        messageIdBeingRespondedTo: command.messageId,
        affectedSopClassUid: command.affectedSopClassUid,
        affectedSopInstanceUid: command.affectedSopInstanceUid,
        status: result.status,
        errorComment: result.comment,
      });
      this.socket.write(pdu);
      (this as unknown as DimseNetworkInternals).statistics.addBytesSent(pdu.length);
    }
  }

  const scpOptions: Record<string, unknown> = {
    associationTimeout: config.associationTimeoutSeconds * 1000,
    pduTimeout: config.associationTimeoutSeconds * 1000,
  };
  const onConnection = (socket: Socket | TLSSocket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const scp = new CxrScp(socket, scpOptions);
    scp.on("networkError", (err: Error) => {
      logger.warn({ err: err.message, peer: peerAddress(socket) }, "DICOM network error");
      socket.destroy();
    });
  };
  let server: NetServer;
  if (config.tls) {
    scpOptions.securityOptions = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
    server = createTlsServer(
      {
        cert: readFileSync(config.tls.cert),
        key: readFileSync(config.tls.key),
        ca: config.tls.ca ? readFileSync(config.tls.ca) : undefined,
        requestCert: config.tls.requireClientCertificate,
        rejectUnauthorized: config.tls.requireClientCertificate,
        minVersion: "TLSv1.2",
      },
      onConnection,
    );
  } else {
    server = createTcpServer({ noDelay: true }, onConnection);
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.bindAddress, () => {
      server.off("error", reject);
      server.on("error", (err) => logger.error({ err: err.message }, "DICOM listener error"));
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : config.port;
      resolve({
        port,
        host: config.bindAddress,
        activeAssociations: () => active,
        close: async () => {
          await new Promise<void>((res) => {
            for (const s of sockets) s.destroy();
            server.close(() => res());
          });
          // Their senders get no answer any more (and resend), but what is on disk is also recorded.
          await Promise.allSettled([...finishing]);
        },
      });
    });
  });
}

