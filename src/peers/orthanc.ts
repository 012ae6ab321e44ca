import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync, createWriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.ts";

/**
 * Runs a private Orthanc (Debian's `Orthanc` binary with the DICOMweb plugin) from the repo's
 * fixture configuration: the local PACS of the demo and of the tests. Ports and folders are
 * chosen per instance so several can run side by side.
 */
export const ORTHANC_BINARY = "/usr/sbin/Orthanc";
export const ORTHANC_TEMPLATE = fileURLToPath(new URL("../../fixtures/orthanc/orthanc.json", import.meta.url));

export interface OrthancOptions {
  /** Folder for storage, index, config and log; created if missing. */
  dir: string;
  httpPort?: number;
  dicomPort?: number;
  aet?: string;
  /** Remote DICOM nodes Orthanc may send to, by symbolic name: [AET, host, port]. */
  modalities?: Record<string, [string, string, number]>;
  /** Seconds without a new instance before a study counts as stable in Orthanc. */
  stableAge?: number;
}

export interface OrthancHandle {
  readonly httpUrl: string;
  readonly httpPort: number;
  readonly dicomPort: number;
  readonly aet: string;
  readonly dir: string;
  readonly configPath: string;
  readonly process: ChildProcess;
  /** JSON REST call; throws with the status and body on a non-2xx answer. */
  rest<T = unknown>(path: string, init?: { method?: string; body?: unknown; raw?: boolean }): Promise<T>;
  /** Raw bytes of a REST resource (e.g. `/instances/<id>/file`). */
  bytes(path: string): Promise<Buffer>;
  stop(): Promise<void>;
}

export function writeOrthancConfig(opts: Required<Pick<OrthancOptions, "dir">> & OrthancOptions & { httpPort: number; dicomPort: number }): string {
  const cfg = JSON.parse(readFileSync(ORTHANC_TEMPLATE, "utf8")) as Record<string, unknown>;
  cfg.StorageDirectory = join(opts.dir, "storage");
  cfg.IndexDirectory = join(opts.dir, "storage");
  cfg.HttpPort = opts.httpPort;
  cfg.DicomPort = opts.dicomPort;
  if (opts.aet) cfg.DicomAet = opts.aet;
  if (opts.modalities) cfg.DicomModalities = opts.modalities;
  if (opts.stableAge !== undefined) cfg.StableAge = opts.stableAge;
  const configPath = join(opts.dir, "orthanc.json");
  writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  return configPath;
}

/**
 * Starts Orthanc. Ports not given are taken free from the kernel; as Orthanc binds them only once it
 * has started, another process may take one meanwhile — then Orthanc exits and is started again on
 * other ports (at most three tries). Ports given are used as they are.
 */
export async function startOrthanc(options: OrthancOptions): Promise<OrthancHandle> {
  if (!existsSync(ORTHANC_BINARY)) {
    throw new Error(`Orthanc is not installed (${ORTHANC_BINARY} missing): run scripts/setup.sh`);
  }
  mkdirSync(options.dir, { recursive: true });
  const portsChosenHere = options.httpPort === undefined || options.dicomPort === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOrthancOnce(options);
    } catch (err) {
      if (!(err instanceof OrthancExitedError) || !portsChosenHere || attempt === 3) throw err;
    }
  }
}

class OrthancExitedError extends Error {}

async function startOrthancOnce(options: OrthancOptions): Promise<OrthancHandle> {
  const httpPort = options.httpPort ?? (await freePort());
  const dicomPort = options.dicomPort ?? (await freePort());
  const aet = options.aet ?? "ORTHANC";
  const configPath = writeOrthancConfig({ ...options, httpPort, dicomPort, aet });
  const log = createWriteStream(join(options.dir, "orthanc.log"), { flags: "a" });
  const child = spawn(ORTHANC_BINARY, [configPath], { stdio: ["ignore", "pipe", "pipe"] });
  // Both streams write into one log, so neither may end it: it ends once the process and its pipes closed.
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  child.once("close", () => log.end());
  const httpUrl = `http://127.0.0.1:${httpPort}`;

  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = signal ?? `exit ${code}`));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new OrthancExitedError(`Orthanc exited during start (${exited}); see ${join(options.dir, "orthanc.log")}`);
    try {
      const r = await fetch(`${httpUrl}/system`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`Orthanc did not answer on ${httpUrl} within 30 s; see ${join(options.dir, "orthanc.log")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  async function rest<T>(path: string, init: { method?: string; body?: unknown; raw?: boolean } = {}): Promise<T> {
    const body: string | Uint8Array<ArrayBuffer> | undefined =
      init.body === undefined ? undefined : typeof init.body === "string" ? init.body : Buffer.isBuffer(init.body) ? Uint8Array.from(init.body) : JSON.stringify(init.body);
    const method = init.method ?? (body === undefined ? "GET" : "POST");
    const r = await fetch(`${httpUrl}${path}`, { method, body });
    const text = await r.text();
    if (!r.ok) throw new Error(`Orthanc ${method} ${path}: HTTP ${r.status} ${text.slice(0, 300)}`);
    if (init.raw) return text as T;
    return (text ? JSON.parse(text) : undefined) as T;
  }

  return {
    httpUrl,
    httpPort,
    dicomPort,
    aet,
    dir: options.dir,
    configPath,
    process: child,
    rest,
    async bytes(path: string) {
      const r = await fetch(`${httpUrl}${path}`);
      if (!r.ok) throw new Error(`Orthanc GET ${path}: HTTP ${r.status}`);
      return Buffer.from(await r.arrayBuffer());
    },
    async stop() {
      if (exited) return;
      const done = new Promise<void>((res) => child.once("exit", () => res()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await done;
      clearTimeout(timer);
    },
  };
}
