/**
 * The spool's log: received data sets are appended to preallocated, zero-filled segment files and
 * made durable by one fdatasync per group of answers (GroupCommit). Writing into blocks that are
 * already allocated and flushed changes no file system metadata, so that flush writes the data and
 * nothing else — no journal commit, no folder fsync (bench/ingest's FLOOR rows: the cheapest
 * durable write there is). The spool copies each instance to its study folder beside the flush and
 * makes that copy durable later, in the background; a segment is reused once every instance in it
 * (and in every older segment) is durable in its folder.
 *
 * Segment file: a 4096-byte header (magic, generation, sequence number, CRC), then records. Record:
 * a 32-byte header (magic, kind, instance id, payload length, payload CRC-32 except for DATA, the
 * segment's generation, header CRC-32) and its payload. An instance is BEGIN (its C-STORE, as JSON),
 * DATA records (its data set, in network order, possibly across segments) and COMMIT (its study,
 * size and content hash, as JSON); ABORT after a COMMIT withdraws it. Reading back stops at the
 * first record header that is not whole and of this generation (what a crash cut off, zeros, or an
 * earlier use of the segment); an instance whose data do not hash to its COMMIT is left out.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fdatasync, fdatasyncSync, fstatSync, mkdirSync, openSync, read, readdirSync, readSync, unlinkSync, writeSync, writev } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { crc32 } from "node:zlib";
import { DatasetHash } from "./content-hash.ts";
import { fsyncDirectory } from "./dir-sync.ts";
import { GroupCommit } from "./group-commit.ts";

const fdatasyncAsync = promisify(fdatasync);
const readAsync = promisify(read);
const writevAsync = promisify(writev);
const SEGMENT_MAGIC = Buffer.from("cxr spool log 1\n", "latin1");
const SEGMENT_HEADER_BYTES = 4096;
const RECORD_MAGIC = 0x4c525843;
const RECORD_HEADER_BYTES = 32;
const KIND = { begin: 1, data: 2, commit: 3, abort: 4 } as const;
type Kind = (typeof KIND)[keyof typeof KIND];
const ZEROS = Buffer.alloc(1 << 20);

export const DEFAULT_SEGMENT_BYTES = 32 << 20;

/** Bytes of one instance's data in one segment. */
interface Extent {
  segment: Segment;
  offset: number;
  length: number;
}

class Segment {
  /** Where the next record goes. */
  cursor = SEGMENT_HEADER_BYTES;
  /** No record will be added (the log moved on to another segment). */
  full = false;
  /** Instances with records here that are not yet durable elsewhere (or abandoned). */
  holders = 0;

  constructor(
    readonly path: string,
    readonly fd: number,
    readonly size: number,
    public generation: Buffer,
    public seq: number,
  ) {}
}

function segmentHeader(generation: Buffer, seq: number): Buffer {
  const h = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(h, 0);
  generation.copy(h, 16);
  h.writeBigUInt64LE(BigInt(seq), 24);
  h.writeUInt32LE(crc32(h.subarray(0, 32)), 32);
  return h;
}

function readSegmentHeader(fd: number): { generation: Buffer; seq: number } | undefined {
  const h = Buffer.alloc(36);
  if (readSync(fd, h, 0, 36, 0) < 36) return undefined;
  if (!h.subarray(0, 16).equals(SEGMENT_MAGIC) || h.readUInt32LE(32) !== crc32(h.subarray(0, 32))) return undefined;
  return { generation: Buffer.from(h.subarray(16, 24)), seq: Number(h.readBigUInt64LE(24)) };
}

/**
 * A record's header. Its payload's CRC-32 is left out for DATA: the data set is checked as a whole
 * by its content hash (in the COMMIT), which the spool computes anyway — a CRC as well would be a
 * second pass over every byte on the listener's thread.
 */
function recordHeader(kind: Kind, id: number, payload: Buffer, generation: Buffer): Buffer {
  const h = Buffer.alloc(RECORD_HEADER_BYTES);
  h.writeUInt32LE(RECORD_MAGIC, 0);
  h[4] = kind;
  h.writeUInt32LE(id, 8);
  h.writeUInt32LE(payload.length, 12);
  h.writeUInt32LE(kind === KIND.data ? 0 : crc32(payload), 16);
  generation.copy(h, 20);
  h.writeUInt32LE(crc32(h.subarray(0, 28)), 28);
  return h;
}

/** Writes all of `buffers` at `position` on the thread pool (a short write, which regular files only do when the disk is full, is an error). */
async function writeAllAt(fd: number, buffers: Buffer[], position: number): Promise<void> {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  const { bytesWritten: n } = await writevAsync(fd, buffers, position);
  if (n !== total) throw new Error(`short write to the spool log: ${n} of ${total} bytes`);
}

/** A zero-filled, flushed segment file of `size` bytes with a header: writes into it change no metadata. */
async function createSegment(dir: string, name: string, size: number, seq: number, syncToDisk: boolean): Promise<Segment> {
  const path = join(dir, name);
  const fh = await open(path, "wx+");
  try {
    for (let at = 0; at < size; at += ZEROS.length) await fh.write(ZEROS, 0, Math.min(ZEROS.length, size - at), at);
    const generation = randomBytes(8);
    await fh.write(segmentHeader(generation, seq), 0, SEGMENT_HEADER_BYTES, 0);
    if (syncToDisk) await fh.sync();
    const fd = openSync(path, "r+");
    if (syncToDisk) await fsyncDirectory(dir);
    return new Segment(path, fd, size, generation, seq);
  } finally {
    await fh.close();
  }
}

export interface SegmentLogOptions {
  dir: string;
  /** Size of each segment file (default 32 MiB). */
  segmentBytes?: number;
  /** false: no flushes (bench/ingest's DIAGNOSTIC row only). */
  syncToDisk?: boolean;
}

/** One instance in the log, while it is written and until it is durable elsewhere. */
export class LoggedInstance {
  readonly extents: Extent[] = [];
  size = 0;
  /** The content hash of the data set (DatasetHash), once sealed. */
  sha256?: string;
  private readonly hash = new DatasetHash();
  /** Its records' writes (on the thread pool): sealing waits for them. */
  private readonly writes: Promise<void>[] = [];
  private released = false;
  private readonly held = new Set<Segment>();

  constructor(
    private readonly log: SegmentLog,
    readonly id: number,
  ) {}

  /** The next fragment of the data set (written now, durable after the next commit). */
  append(fragment: Buffer): void {
    const at = this.log.write(this, KIND.data, fragment);
    this.writes.push(at.written);
    this.extents.push({ segment: at.segment, offset: at.offset, length: fragment.length });
    this.size += fragment.length;
    this.hash.update(fragment);
  }

  /**
   * The instance is whole and accepted: its content hash (also the replay's check that its data are
   * whole) goes into the COMMIT; durable, with its data, once the log's next commit resolves.
   */
  seal(meta: Record<string, unknown>): Promise<void> {
    this.sha256 = this.hash.hex();
    this.writes.push(this.log.write(this, KIND.commit, Buffer.from(JSON.stringify({ ...meta, size: this.size, sha256: this.sha256 }))).written);
    // A failed write of any of its records fails the seal (the sender gets a failure status).
    return Promise.all(this.writes).then(() => this.log.commit());
  }

  /** Takes a sealed instance back (its folder copy failed and its sender was answered a failure). */
  withdraw(): void {
    this.log.write(this, KIND.abort, Buffer.alloc(0)).written.catch(() => undefined);
  }

  /** The data set, read back from the log in pieces of at most `chunk` bytes. */
  async *read(chunk = 4 << 20): AsyncGenerator<Buffer> {
    for (const e of this.extents) {
      for (let at = 0; at < e.length; at += chunk) {
        const n = Math.min(chunk, e.length - at);
        const b = Buffer.allocUnsafe(n);
        await readFully(e.segment.fd, b, e.offset + at);
        yield b;
      }
    }
  }

  /** A write of one of its records, which its seal waits for. */
  track(written: Promise<void>): void {
    this.writes.push(written);
  }

  /** Noted by each segment holding its records, so none is reused while it is needed. */
  hold(segment: Segment): void {
    if (this.held.has(segment)) return;
    this.held.add(segment);
    segment.holders++;
  }

  /** Durable elsewhere (or abandoned): its segments may be reused. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const s of this.held) s.holders--;
    this.log.reclaim();
  }
}

/** Reads `b.length` bytes at `position` on the thread pool (a large instance is read back without blocking the listener). */
async function readFully(fd: number, b: Buffer, position: number): Promise<void> {
  for (let got = 0; got < b.length; ) {
    const { bytesRead } = await readAsync(fd, b, got, b.length - got, position + got);
    if (bytesRead === 0) throw new Error("spool log ends inside a record");
    got += bytesRead;
  }
}

export class SegmentLog {
  /** In use, oldest first: reused only from the front, so the segments that are not reused are always the newest. */
  private readonly segments: Segment[] = [];
  private readonly spares: Segment[] = [];
  private current!: Segment;
  private nextSeq = 1;
  private nextId = 1;
  private readonly dirty = new Set<Segment>();
  /** Record writes on the thread pool, not yet done. */
  private readonly pending = new Set<Promise<void>>();
  private readonly group: GroupCommit;
  private preparing?: Promise<void>;
  private closed = false;
  private recycling?: Promise<void>;
  readonly segmentBytes: number;
  readonly syncToDisk: boolean;

  private constructor(private readonly dir: string, opts: SegmentLogOptions) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.syncToDisk = opts.syncToDisk ?? true;
    this.group = new GroupCommit(() => this.flush());
  }

  /**
   * Opens an empty log (replayLog has filed what it held): existing segment files are reused under a
   * new generation, so their old records are never read as new.
   */
  static async open(opts: SegmentLogOptions): Promise<SegmentLog> {
    mkdirSync(opts.dir, { recursive: true });
    const log = new SegmentLog(opts.dir, opts);
    for (const name of segmentNames(opts.dir)) {
      const fd = openSync(join(opts.dir, name), "r+");
      const size = fstatSync(fd).size;
      if (size !== log.segmentBytes) {
        closeSync(fd);
        unlinkSync(join(opts.dir, name));
        continue;
      }
      log.nextSeq = Math.max(log.nextSeq, (readSegmentHeader(fd)?.seq ?? 0) + 1);
      log.spares.push(new Segment(join(opts.dir, name), fd, size, Buffer.alloc(8), 0));
    }
    for (const s of log.spares) await log.renew(s);
    while (log.spares.length < 2) log.spares.push(await log.create());
    log.current = log.spares.shift()!;
    log.segments.push(log.current);
    return log;
  }

  /** A new instance: BEGIN with its C-STORE's facts. */
  begin(meta: Record<string, unknown>): LoggedInstance {
    const inst = new LoggedInstance(this, this.nextId++ >>> 0);
    inst.track(this.write(inst, KIND.begin, Buffer.from(JSON.stringify(meta))).written);
    return inst;
  }

  /**
   * Appends one record for `inst`: its place is taken now, its bytes are written on the thread pool
   * (`written`; the next flush waits for every write started before it). Throws when it has no place.
   */
  write(inst: LoggedInstance, kind: Kind, payload: Buffer): { segment: Segment; offset: number; written: Promise<void> } {
    const need = RECORD_HEADER_BYTES + payload.length;
    if (need > this.segmentBytes - SEGMENT_HEADER_BYTES) throw new Error(`a ${payload.length}-byte record does not fit a ${this.segmentBytes}-byte spool segment`);
    if (this.current.cursor + need > this.current.size) this.advance();
    const segment = this.current;
    const at = segment.cursor;
    const written = writeAllAt(segment.fd, [recordHeader(kind, inst.id, payload, segment.generation), payload], at);
    this.pending.add(written);
    void written.catch(() => undefined).finally(() => this.pending.delete(written));
    segment.cursor += need;
    this.dirty.add(segment);
    inst.hold(segment);
    return { segment, offset: at + RECORD_HEADER_BYTES, written };
  }

  /** Resolves once everything written before the call is on disk. */
  commit(): Promise<void> {
    return this.group.commit();
  }

  private async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    const segments = [...this.dirty];
    this.dirty.clear();
    if (this.syncToDisk) await Promise.all(segments.map((s) => fdatasyncAsync(s.fd)));
  }

  /** The current segment is full: the next one (a spare, else a new one made now, which blocks). */
  private advance(): void {
    this.current.full = true;
    let next = this.spares.shift();
    if (!next) next = this.createNow();
    this.current = next;
    this.segments.push(next);
    this.prepareSpare();
    this.reclaim();
  }

  /** Keeps one spare ready, made in the background (zero-filling a segment takes tens of ms). */
  private prepareSpare(): void {
    if (this.preparing || this.spares.length > 0) return;
    this.preparing = this.create()
      .then((s) => void this.spares.push(s))
      .catch(() => undefined)
      .finally(() => (this.preparing = undefined));
  }

  private async create(): Promise<Segment> {
    const seq = this.nextSeq++;
    return createSegment(this.dir, `${String(seq).padStart(12, "0")}-${randomBytes(4).toString("hex")}.seg`, this.segmentBytes, seq, this.syncToDisk);
  }

  /** The rare case of no spare ready: made synchronously (the instance waits; nothing is lost). */
  private createNow(): Segment {
    const seq = this.nextSeq++;
    const path = join(this.dir, `${String(seq).padStart(12, "0")}-${randomBytes(4).toString("hex")}.seg`);
    const fd = openSync(path, "wx+");
    for (let at = 0; at < this.segmentBytes; at += ZEROS.length) writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, this.segmentBytes - at), at);
    const generation = randomBytes(8);
    writeSync(fd, segmentHeader(generation, seq), 0, SEGMENT_HEADER_BYTES, 0);
    // Its name must be durable before an answer relies on its records: the commit flushes the data, not the folder.
    if (this.syncToDisk) {
      fdatasyncSync(fd);
      const d = openSync(this.dir, "r");
      try {
        fdatasyncSync(d);
      } finally {
        closeSync(d);
      }
    }
    return new Segment(path, fd, this.segmentBytes, generation, seq);
  }

  /** A segment for reuse: a new generation and sequence number, flushed before any record relies on it. */
  private async renew(s: Segment): Promise<void> {
    s.generation = randomBytes(8);
    s.seq = this.nextSeq++;
    s.cursor = SEGMENT_HEADER_BYTES;
    s.full = false;
    s.holders = 0;
    writeSync(s.fd, segmentHeader(s.generation, s.seq), 0, SEGMENT_HEADER_BYTES, 0);
    // Flushed now: an old header left on disk would let a replay file its (older) instances again.
    if (this.syncToDisk) await fdatasyncAsync(s.fd);
  }

  /** Reuses full segments from the front while nothing holds them (oldest first, never past one still held). */
  reclaim(): void {
    if (this.recycling) return;
    const s = this.segments[0];
    if (!s || !s.full || s.holders > 0) return;
    this.segments.shift();
    this.recycling = this.renew(s)
      .then(
        () => void this.spares.push(s),
        // A segment that cannot be renewed is not reused (a new one is made when needed).
        () => closeQuietly(s.fd),
      )
      .finally(() => {
        this.recycling = undefined;
        if (!this.closed) this.reclaim();
      });
  }

  /** Segments in use, spares included (for tests and the status of the spool). */
  segmentCount(): number {
    return this.segments.length + this.spares.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.preparing;
    await this.recycling;
    for (const s of [...this.segments, ...this.spares]) closeSync(s.fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

function segmentNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(".seg"))
    .sort();
}

/** A whole instance found in a log at start: its C-STORE facts, its COMMIT facts and where its data lies. */
export interface ReplayedInstance {
  begin: Record<string, unknown>;
  commit: Record<string, unknown>;
  read(): AsyncGenerator<Buffer>;
}

/**
 * The sealed instances of a log folder, in the order they were sealed (a later copy of an instance
 * supersedes an earlier one): BEGIN, every DATA record and COMMIT whole, no ABORT after it. What a
 * crash cut off (no COMMIT, or a torn record before it) is left out; so are earlier uses of a segment.
 */
export function replayLog(dir: string): { instances: ReplayedInstance[]; close(): void } {
  const fds: number[] = [];
  const found: { seq: number; segment: Segment }[] = [];
  let names: string[] = [];
  try {
    names = segmentNames(dir);
  } catch {
    return { instances: [], close: () => undefined };
  }
  for (const name of names) {
    const fd = openSync(join(dir, name), "r");
    fds.push(fd);
    const header = readSegmentHeader(fd);
    if (header) found.push({ seq: header.seq, segment: new Segment(join(dir, name), fd, fstatSync(fd).size, header.generation, header.seq) });
  }
  found.sort((a, b) => a.seq - b.seq);
  const begun = new Map<number, { begin?: Record<string, unknown>; extents: Extent[]; size: number; hash: DatasetHash }>();
  const sealed: { id: number; commit: Record<string, unknown> }[] = [];
  const withdrawn = new Set<number>();
  for (const { segment } of found) {
    for (const r of records(segment)) {
      if (r.kind === KIND.begin) begun.set(r.id, { begin: JSON.parse(r.payload().toString()) as Record<string, unknown>, extents: [], size: 0, hash: new DatasetHash() });
      const inst = begun.get(r.id);
      if (!inst) continue;
      if (r.kind === KIND.data) {
        inst.extents.push({ segment, offset: r.offset, length: r.length });
        inst.size += r.length;
        inst.hash.update(r.payload());
      } else if (r.kind === KIND.commit) {
        const commit = JSON.parse(r.payload().toString()) as Record<string, unknown>;
        // Torn data (a crash during its flush, so never answered Success) does not hash to its COMMIT.
        if (commit.size === inst.size && commit.sha256 === inst.hash.hex()) sealed.push({ id: r.id, commit });
      }
      else if (r.kind === KIND.abort) withdrawn.add(r.id);
    }
  }
  const instances: ReplayedInstance[] = [];
  for (const { id, commit } of sealed) {
    const inst = begun.get(id)!;
    if (withdrawn.has(id) || !inst.begin) continue;
    const extents = inst.extents;
    instances.push({
      begin: inst.begin,
      commit,
      async *read() {
        for (const e of extents) {
          const b = Buffer.allocUnsafe(e.length);
          await readFully(e.segment.fd, b, e.offset);
          yield b;
        }
      },
    });
  }
  return { instances, close: () => fds.forEach((fd) => closeSync(fd)) };
}

/** A segment's valid records, in order, up to the first that is not whole and of its generation. */
function* records(s: Segment): Generator<{ kind: Kind; id: number; offset: number; length: number; payload(): Buffer }> {
  const h = Buffer.alloc(RECORD_HEADER_BYTES);
  for (let at = SEGMENT_HEADER_BYTES; at + RECORD_HEADER_BYTES <= s.size; ) {
    if (readSync(s.fd, h, 0, RECORD_HEADER_BYTES, at) < RECORD_HEADER_BYTES) return;
    if (h.readUInt32LE(0) !== RECORD_MAGIC || h.readUInt32LE(28) !== crc32(h.subarray(0, 28)) || !h.subarray(20, 28).equals(s.generation)) return;
    const kind = h[4] as Kind;
    const id = h.readUInt32LE(8);
    const length = h.readUInt32LE(12);
    const offset = at + RECORD_HEADER_BYTES;
    if (offset + length > s.size) return;
    const payload = Buffer.allocUnsafe(length);
    if (readSync(s.fd, payload, 0, length, offset) < length || (kind !== KIND.data && crc32(payload) !== h.readUInt32LE(16))) return;
    yield { kind, id, offset, length, payload: () => payload };
    at = offset + length;
  }
}

