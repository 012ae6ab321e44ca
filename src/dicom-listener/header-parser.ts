/**
 * The parse of received headers. A header already measured small (measureHeader: at most
 * INLINE_PARSE elements and nesting levels — a radiograph's usual header) is parsed at once on the
 * calling thread: its cost is bounded by those counts (dcmjs takes about 20 µs per element, so at
 * most a few milliseconds), and a worker round trip cost more than that on the answer path of every
 * instance (bench/ingest, 1 sender, on the busy 2-core machine: ratio to storescp 0.21–0.28 with
 * every header in a worker, 0.36–0.56 with small ones inline, 0.47–0.52 before the listener's split,
 * which parsed every header inline without a budget). Every other header goes to a few workers (header-worker.mjs), each parsing one header at
 * a time, taken in arrival order; a parse that runs over its time budget, or a worker whose heap
 * runs over its cap, is ended by terminating that worker (a new one takes its next header) and
 * answered with a ParseBudgetError. One slow header holds up at most one worker, never the service.
 */
import { Worker } from "node:worker_threads";
import { parseDicom } from "../dicom/read.ts";

/** The most a header parsed on the calling thread may hold (see above). */
export const INLINE_PARSE = { maxElements: 250, maxNestingDepth: 4 } as const;

/** What measureHeader counted in a header. */
export interface MeasuredCost {
  elements: number;
  depth: number;
}

/** A header over its parse budget (the instance is refused and quarantined with this reason). */
export class ParseBudgetError extends Error {}

export interface HeaderParserOptions {
  /** The longest one parse may take. */
  timeoutMs: number;
  /** Parses that may run at once (one worker each; default 2). */
  workers?: number;
  /** Each worker's heap cap (default 512 MB). */
  maxHeapMb?: number;
}

interface Job {
  message: { id: number; bytes?: Uint8Array; path?: string };
  resolve: (dataset: Record<string, unknown>) => void;
  reject: (err: Error) => void;
}

/** One worker and the parse it is running. */
interface Slot {
  worker?: Worker;
  /** Resolves once the worker has loaded dcmjs (about a second of CPU on a busy machine). */
  ready?: Promise<void>;
  running?: { job: Job; timer: NodeJS.Timeout };
}

export class HeaderParser {
  private readonly queue: Job[] = [];
  private readonly slots: Slot[];
  private readonly maxHeapMb: number;
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: HeaderParserOptions) {
    this.slots = Array.from({ length: Math.max(1, opts.workers ?? 2) }, () => ({}));
    this.maxHeapMb = opts.maxHeapMb ?? 512;
  }

  /**
   * The naturalized header of a Part 10 byte string that ends at (or before) the top-level Pixel
   * Data; on this thread when `measured` says it is small, else in a worker.
   */
  parse(part10: Buffer, measured?: MeasuredCost): Promise<Record<string, unknown>> {
    if (measured && measured.elements <= INLINE_PARSE.maxElements && measured.depth <= INLINE_PARSE.maxNestingDepth) {
      try {
        return Promise.resolve(parseDicom(new Uint8Array(part10.buffer, part10.byteOffset, part10.byteLength), "received header", { withPixelData: false }).dataset);
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    // Copied into a transferable buffer of its own: the fragments it came from stay with the listener.
    const bytes = new Uint8Array(part10.length);
    bytes.set(part10);
    return this.enqueue({ bytes });
  }

  /** The naturalized header of a Part 10 file (deflated data sets, which cannot be measured as they arrive). */
  parseFile(path: string): Promise<Record<string, unknown>> {
    return this.enqueue({ path });
  }

  /** Starts the workers now; resolves once they are ready, so that the first instances do not wait for them. */
  async warm(): Promise<void> {
    for (const slot of this.slots) this.ensureWorker(slot);
    await Promise.all(this.slots.map((s) => s.ready));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error("header parser closed"));
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.running) this.finish(slot, new Error("header parser closed"));
        const w = slot.worker;
        slot.worker = undefined;
        await w?.terminate();
      }),
    );
  }

  private enqueue(message: { bytes?: Uint8Array; path?: string }): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new Error("header parser closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ message: { id: this.nextId++, ...message }, resolve, reject });
      this.next();
    });
  }

  private ensureWorker(slot: Slot): Worker {
    if (slot.worker) return slot.worker;
    const worker = new Worker(new URL("./header-worker.mjs", import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: this.maxHeapMb } });
    worker.unref();
    let isReady!: () => void;
    slot.ready = new Promise((resolve) => (isReady = resolve));
    worker.on("message", (msg: { ready?: true; id: number; json?: string; error?: string }) => {
      if (msg.ready) return isReady();
      if (slot.running?.job.message.id !== msg.id) return;
      if (msg.error !== undefined) this.finish(slot, new Error(msg.error));
      else this.finish(slot, undefined, JSON.parse(msg.json!) as Record<string, unknown>);
    });
    worker.on("error", (err) => this.workerGone(slot, worker, err));
    worker.on("exit", () => this.workerGone(slot, worker, new Error("header parser worker exited")));
    slot.worker = worker;
    return worker;
  }

  private workerGone(slot: Slot, worker: Worker, err: Error): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.ready = undefined;
    const outOfMemory = (err as NodeJS.ErrnoException).code === "ERR_WORKER_OUT_OF_MEMORY";
    if (slot.running) this.finish(slot, outOfMemory ? new ParseBudgetError(`header parse ran out of its ${this.maxHeapMb} MB heap`) : err);
  }

  private next(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (slot.running) continue;
      const job = this.queue.shift();
      if (!job) return;
      const worker = this.ensureWorker(slot);
      const timer = setTimeout(() => {
        // The worker is stuck in this parse: it goes, and a new one takes the slot's next header.
        slot.worker = undefined;
        slot.ready = undefined;
        void worker.terminate();
        this.finish(slot, new ParseBudgetError(`header parse took longer than ${this.opts.timeoutMs / 1000} s`));
      }, this.opts.timeoutMs);
      slot.running = { job, timer };
      worker.postMessage(job.message, job.message.bytes ? [job.message.bytes.buffer as ArrayBuffer] : []);
    }
  }

  private finish(slot: Slot, err: Error | undefined, dataset?: Record<string, unknown>): void {
    const running = slot.running;
    if (!running) return;
    slot.running = undefined;
    clearTimeout(running.timer);
    if (err) running.job.reject(err);
    else running.job.resolve(dataset!);
    this.next();
  }
}
