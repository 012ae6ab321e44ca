import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { listenerConfigSchema, SOP_CLASS } from "../../src/config/service.ts";
import { startListener, type DicomListener } from "../../src/dicom-listener/listener.ts";
import { freePort } from "../../src/peers/ports.ts";
import { openSqliteStore, type Store } from "../../src/store/index.ts";
import { promisify } from "node:util";
import type { OrthancHandle } from "../../src/peers/orthanc.ts";

const execFileAsync = promisify(execFile);

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Orthanc's instances of a study (by Study Instance UID), with their SOP class and modality. */
export async function orthancStudyInstances(orthanc: OrthancHandle, studyUid: string): Promise<{ id: string; sopClassUid: string; modality: string; sopInstanceUid: string }[]> {
  const found = await orthanc.rest<{ ID: string; Type: string }[]>("/tools/lookup", { method: "POST", body: studyUid });
  const study = found.find((f) => f.Type === "Study");
  if (!study) return [];
  const instances = await orthanc.rest<{ ID: string; MainDicomTags: { SOPInstanceUID: string } }[]>(`/studies/${study.ID}/instances`);
  const out = [];
  for (const i of instances) {
    const tags = await orthanc.rest<Record<string, string>>(`/instances/${i.ID}/simplified-tags`);
    out.push({ id: i.ID, sopClassUid: tags.SOPClassUID ?? "", modality: tags.Modality ?? "", sopInstanceUid: tags.SOPInstanceUID ?? "" });
  }
  return out;
}

/** dciodvfy's error lines for a file (an empty list = conformant). */
export async function dciodvfyErrors(path: string): Promise<string[]> {
  let out = "";
  try {
    const r = await execFileAsync("dciodvfy", [path], { maxBuffer: 16 << 20 });
    out = `${r.stdout}${r.stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    out = `${e.stdout ?? ""}${e.stderr ?? ""}`;
  }
  return out.split("\n").filter((l) => /^Error/.test(l));
}

/** A running `cxr serve`: the process and where it listens (from its "listener ready" line). */
export interface ServedNode {
  child: ChildProcess;
  dicomPort: number;
  httpUrl?: string;
}

/**
 * `cxr serve --config <file> [extraArgs]` as a child process; resolves once it logged "listener ready", with the
 * ports it logged there — so a config may ask for port 0 and no test races another for a "free" port.
 * Exiting before that rejects with the end of its output, so a CI log shows why.
 */
export function serve(configPath: string, logPath: string, extraArgs: string[] = []): Promise<ServedNode> {
  const child = spawn(process.execPath, ["bin/cxr.js", "serve", "--config", configPath, ...extraArgs], { stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logPath, { flags: "a" });
  let tail = "";
  const keep = (d: Buffer) => (tail = (tail + d.toString()).slice(-4000));
  child.stderr!.on("data", keep).pipe(log);
  return new Promise((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      log.write(d);
      keep(d);
      // Whole lines only: a chunk may end inside the ready line.
      const lines = (buf + d.toString()).split("\n");
      buf = lines.pop()!;
      const line = lines.find((l) => l.includes('"msg":"listener ready"'));
      if (line) {
        const ready = JSON.parse(line) as { port: number; http?: string };
        resolve({ child, dicomPort: ready.port, httpUrl: ready.http });
      }
    });
    child.on("exit", (code) => reject(new Error(`cxr serve exited (${code}) before it was ready; see ${logPath}; its last output:\n${tail}`)));
  });
}

export interface ClusterNodeOptions {
  /** Test folder: holds the node's config and log, the shared data folder (`shared-data`) and the model (`model`). */
  dir: string;
  nodeId: string;
  aeTitle: string;
  token: string;
  /** The PostgreSQL every node shares. */
  storeUrl: string;
  leaseSeconds: number;
  orthanc: Pick<OrthancHandle, "aet" | "dicomPort">;
}

/** One `cxr serve` process of a test cluster: one PostgreSQL, one shared data folder, Orthanc as the PACS. */
export function serveClusterNode(o: ClusterNodeOptions): Promise<ServedNode> {
  const configPath = join(o.dir, `${o.nodeId}.json`);
  writeFileSync(configPath, JSON.stringify({
    dataDir: join(o.dir, "shared-data"),
    logLevel: "info",
    model: { dir: join(o.dir, "model") },
    dicom: { aeTitle: o.aeTitle, port: 0, acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.SECONDARY_CAPTURE] },
    intake: { stableAgeSeconds: 1 },
    pipeline: { concurrency: 1 },
    export: { destinations: [{ aeTitle: o.orthanc.aet, host: "127.0.0.1", port: o.orthanc.dicomPort }], retryInitialSeconds: 0.5, retryMaxSeconds: 2 },
    api: { httpPort: 0, tokens: [o.token] },
    store: { kind: "postgres", url: o.storeUrl, nodeId: o.nodeId, leaseSeconds: o.leaseSeconds },
  }));
  return serve(configPath, join(o.dir, `${o.nodeId}.log`));
}

/**
 * A listener on a free port over a fresh SQLite store in `dir` (spool and quarantine there too), logging
 * nothing: what the listener, association and fuzzing tests start. `config`: the `dicom` keys under test.
 */
export async function startTestListener(dir: string, config: Record<string, unknown>): Promise<{ listener: DicomListener; store: Store }> {
  const store = openSqliteStore(join(dir, "store.sqlite"));
  const listener = await startListener({
    config: listenerConfigSchema.parse({ port: await freePort(), ...config }),
    store,
    spoolDir: join(dir, "spool"),
    quarantineDir: join(dir, "quarantine"),
    logger: pino({ level: "silent" }),
  });
  return { listener, store };
}
