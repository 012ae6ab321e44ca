import { Worker } from "node:worker_threads";
import * as ort from "onnxruntime-node";
import { createSession, sessionOptions, type Provider, type SessionSettings } from "./providers.ts";

/** One output of a run, as plain data. */
export interface OutputTensor { data: Float32Array; dims: number[] }
export type Outputs = Record<string, OutputTensor>;

interface Runner {
  run(input: Float32Array, dims: number[]): Promise<Outputs>;
  close(): Promise<void>;
}

class InProcessRunner implements Runner {
  constructor(private readonly session: ort.InferenceSession, private readonly io: SessionIo) {}
  async run(input: Float32Array, dims: number[]): Promise<Outputs> {
    const out = await this.session.run({ [this.io.name]: new ort.Tensor("float32", input, dims) }, this.io.outputs);
    const result: Outputs = {};
    for (const [name, t] of Object.entries(out)) result[name] = { data: t.data as Float32Array, dims: [...t.dims] };
    return result;
  }
  close(): Promise<void> { return this.session.release(); }
}

class WorkerRunner implements Runner {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (o: Outputs) => void; reject: (e: Error) => void }>();
  /** Set once the worker has failed or exited: later runs are rejected with it instead of waiting forever. */
  private dead: Error | undefined;
  private readonly exited: Promise<void>;
  private constructor(private readonly worker: Worker) {
    worker.on("message", (msg: { type: string; id: number; outputs?: Outputs; error?: string }) => {
      if (msg.type !== "result") return;
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(msg.error)); else p?.resolve(msg.outputs!);
    });
    const failAll = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on("error", failAll);
    this.exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    worker.on("exit", (code) => failAll(new Error(`session worker exited (code ${code})`)));
  }

  static start(model: Uint8Array, options: ort.InferenceSession.SessionOptions, io: SessionIo): Promise<WorkerRunner> {
    const worker = new Worker(new URL("./session-worker.mjs", import.meta.url), { workerData: { model, options, inputName: io.name, outputNames: io.outputs } });
    return new Promise((resolve, reject) => {
      const settle = () => { worker.off("message", onMessage); worker.off("error", onError); worker.off("exit", onExit); };
      const onMessage = (msg: { type: string; message?: string }) => {
        settle();
        if (msg.type === "ready") resolve(new WorkerRunner(worker));
        else { void worker.terminate(); reject(new Error(msg.message)); }
      };
      const onError = (err: Error) => { settle(); reject(err); };
      const onExit = (code: number) => { settle(); reject(new Error(`session worker exited (code ${code}) before its session was ready`)); };
      worker.once("message", onMessage);
      worker.once("error", onError);
      worker.once("exit", onExit);
    });
  }

  run(input: Float32Array, dims: number[]): Promise<Outputs> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // A copy is transferred: the caller's tensor stays usable.
      const copy = new Float32Array(input);
      this.worker.postMessage({ type: "run", id, input: copy, dims }, [copy.buffer]);
    });
  }

  /** Asks the worker to release its session and waits for it to exit (at once if it already has). */
  async close(): Promise<void> {
    if (!this.dead) this.worker.postMessage({ type: "close" });
    await this.exited;
  }
}

export interface PoolSettings extends SessionSettings {
  /** Sessions that run at the same time: 1 runs in this thread; each further one runs in a worker thread. */
  poolSize?: number;
  /** Images collected into one run (at most); 1 when the model's batch dimension is fixed. */
  batchSize?: number;
}

/** The session's image input and the outputs fetched from each run. */
export interface SessionIo {
  name: string;
  /** Dims of one image, without the batch dimension. */
  imageDims: number[];
  /** A fixed batch dimension in the model: one image per run. */
  fixedBatch: boolean;
  outputs: string[];
}

interface Job { input: Float32Array; resolve: (o: Outputs) => void; reject: (e: Error) => void }

/**
 * Sessions of one model plus batching: `run` queues one image's tensor; whenever a session is free it
 * takes up to `batchSize` queued images and runs them as one batch, so concurrent callers (the pipeline's
 * workers, `inferBatch`) get batched without waiting for a timer.
 */
export class SessionPool {
  private readonly queue: Job[] = [];
  private readonly idle: Runner[];
  private pumpScheduled = false;
  /** Session runs so far and the images they carried (images/runs = the achieved batch size). */
  readonly stats = { runs: 0, images: 0 };

  private constructor(
    private readonly runners: Runner[],
    readonly provider: Provider,
    readonly fallbackReason: string | undefined,
    readonly batchSize: number,
    private readonly imageDims: number[],
  ) {
    this.idle = [...runners];
  }

  static async create(model: Uint8Array, modelPath: string, io: SessionIo, settings: PoolSettings): Promise<SessionPool> {
    const poolSize = Math.max(1, Math.floor(settings.poolSize ?? 1));
    const batchSize = io.fixedBatch ? 1 : Math.max(1, Math.floor(settings.batchSize ?? 1));
    const first = await createSession(model, settings, modelPath);
    const runners: Runner[] = [new InProcessRunner(first.session, io)];
    try {
      for (let i = 1; i < poolSize; i++) runners.push(await WorkerRunner.start(model, sessionOptions(first.provider, settings.threads), io));
    } catch (err) {
      await Promise.all(runners.map((r) => r.close()));
      throw new Error(`${modelPath}: session worker could not start on "${first.provider}": ${(err as Error).message}`);
    }
    return new SessionPool(runners, first.provider, first.fallbackReason, batchSize, io.imageDims);
  }

  /** Runs one image's tensor (possibly batched with others); the outputs have a batch dimension of 1. */
  run(input: Float32Array): Promise<Outputs> {
    const expected = this.imageDims.reduce((a, b) => a * b, 1);
    if (input.length !== expected) return Promise.reject(new Error(`tensor has ${input.length} values; the model takes ${expected} per image [${this.imageDims.join(",")}]`));
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      // Deferred to the end of the current task, so that images submitted together run as one batch.
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        queueMicrotask(() => { this.pumpScheduled = false; this.pump(); });
      }
    });
  }

  private pump(): void {
    while (this.idle.length && this.queue.length) {
      const runner = this.idle.pop()!;
      const jobs = this.queue.splice(0, this.batchSize);
      void this.runBatch(runner, jobs).finally(() => {
        this.idle.push(runner);
        this.pump();
      });
    }
  }

  private async runBatch(runner: Runner, jobs: Job[]): Promise<void> {
    const n = jobs.length;
    const per = jobs[0]!.input.length;
    let batch: Float32Array;
    if (n === 1) batch = jobs[0]!.input;
    else {
      batch = new Float32Array(n * per);
      jobs.forEach((j, i) => batch.set(j.input, i * per));
    }
    this.stats.runs++;
    this.stats.images += n;
    let outputs: Outputs;
    try {
      outputs = await runner.run(batch, [n, ...this.imageDims]);
    } catch (err) {
      for (const j of jobs) j.reject(err as Error);
      return;
    }
    jobs.forEach((j, i) => {
      const one: Outputs = {};
      for (const [name, t] of Object.entries(outputs)) {
        const size = t.data.length / n;
        one[name] = { data: t.data.subarray(i * size, (i + 1) * size), dims: [1, ...t.dims.slice(1)] };
      }
      j.resolve(one);
    });
  }

  /** Closes the sessions; images still queued are rejected, not left waiting. */
  async close(): Promise<void> {
    for (const j of this.queue.splice(0)) j.reject(new Error("the classifier was closed before this image ran"));
    await Promise.all(this.runners.map((r) => r.close()));
  }
}
