/**
 * The parse of received headers, off the main thread: one worker (header-worker.mjs) parses one
 * header at a time, in arrival order. A parse that runs over its time budget, or a worker whose
 * heap runs over its cap, is ended by terminating the worker (a new one takes the next header) and
 * answered with a ParseBudgetError; the service's own thread never runs dcmjs on received bytes.
 */
import { Worker } from "node:worker_threads";

/** A header over its parse budget (the instance is refused and quarantined with this reason). */
export class ParseBudgetError extends Error {}

export interface HeaderParserOptions {
  /** The longest one parse may take. */
  timeoutMs: number;
  /** The worker's heap cap. */
  maxHeapMb?: number;
}

interface Job {
  id: number;
  message: { id: number; bytes?: Uint8Array; path?: string };
  resolve: (dataset: Record<string, unknown>) => void;
  reject: (err: Error) => void;
}

export class HeaderParser {
  private worker?: Worker;
  private readonly queue: Job[] = [];
  private running?: { job: Job; timer: NodeJS.Timeout };
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: HeaderParserOptions) {}

  /** The naturalized header of a Part 10 byte string that ends at (or before) the top-level Pixel Data. */
  parse(part10: Buffer): Promise<Record<string, unknown>> {
    // Copied into a transferable buffer of its own: the fragments it came from stay with the listener.
    const bytes = new Uint8Array(part10.length);
    bytes.set(part10);
    return this.enqueue({ bytes });
  }

  /** The naturalized header of a Part 10 file (deflated data sets, which cannot be measured as they arrive). */
  parseFile(path: string): Promise<Record<string, unknown>> {
    return this.enqueue({ path });
  }

  /** Starts the worker now, so that the first instance does not wait for it. */
  warm(): void {
    this.ensureWorker();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error("header parser closed"));
    if (this.running) this.finish(new Error("header parser closed"));
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private enqueue(message: { bytes?: Uint8Array; path?: string }): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new Error("header parser closed"));
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.queue.push({ id, message: { id, ...message }, resolve, reject });
      this.next();
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL("./header-worker.mjs", import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb ?? 512 } });
    worker.unref();
    worker.on("message", (msg: { id: number; json?: string; error?: string }) => {
      if (this.running?.job.id !== msg.id) return;
      if (msg.error !== undefined) this.finish(new Error(msg.error));
      else this.finish(undefined, JSON.parse(msg.json!) as Record<string, unknown>);
    });
    worker.on("error", (err) => this.workerGone(worker, err));
    worker.on("exit", () => this.workerGone(worker, new Error("header parser worker exited")));
    this.worker = worker;
    return worker;
  }

  private workerGone(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const outOfMemory = (err as NodeJS.ErrnoException).code === "ERR_WORKER_OUT_OF_MEMORY";
    if (this.running) this.finish(outOfMemory ? new ParseBudgetError(`header parse ran out of its ${this.opts.maxHeapMb ?? 512} MB heap`) : err);
  }

  private next(): void {
    if (this.running || this.closed) return;
    const job = this.queue.shift();
    if (!job) return;
    const worker = this.ensureWorker();
    const timer = setTimeout(() => {
      // The worker is stuck in this parse: it goes, and a new one takes the next header.
      this.worker = undefined;
      void worker.terminate();
      this.finish(new ParseBudgetError(`header parse took longer than ${this.opts.timeoutMs / 1000} s`));
    }, this.opts.timeoutMs);
    this.running = { job, timer };
    worker.postMessage(job.message, job.message.bytes ? [job.message.bytes.buffer as ArrayBuffer] : []);
  }

  private finish(err: Error | undefined, dataset?: Record<string, unknown>): void {
    const running = this.running;
    if (!running) return;
    this.running = undefined;
    clearTimeout(running.timer);
    if (err) running.job.reject(err);
    else running.job.resolve(dataset!);
    this.next();
  }
}
