/**
 * Scale-out: studies/second of one `cxr serve` node pinned to one core (`taskset -c 0`) against two
 * nodes pinned to one core each (`taskset -c 0` / `taskset -c 1`), the same PostgreSQL (Debian's
 * server, private, fsync on as in production) and one shared data folder; plus what the PostgreSQL
 * queue costs per study against the embedded SQLite (bench/store-cost.ts, the measurement of
 * bench/store.ts).
 *
 *   npx tsx bench/scale.ts [--studies 16] [--input-size 224] [--keep]   (--keep: leave the nodes' logs and data for a look)
 *
 * The model is the DenseNet121-14 path of bench/e2e.ts: built by `cxr model init` (seeded, untrained —
 * its findings mean nothing, its cost is the real network's), one ORT thread per node, one study at a
 * time per node, exact GradCAM and the SR/SC/Parametric Maps exported to Orthanc. Each node gets one
 * warm-up study first (model load, first inference, first association: not measured); then N studies
 * (test1..3 with new UIDs, one association per node sending its share) are timed from the first
 * C-STORE to the last study "exported". Prints one JSON object, then a table.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { SOP_CLASS } from "../src/config/service.ts";
import { initModelDir } from "../src/model/model-dir.ts";
import { startOrthanc } from "../src/peers/orthanc.ts";
import { freePort } from "../src/peers/ports.ts";
import { openSqliteStore, openStore, type Store } from "../src/store/index.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { reUidStudies } from "../test/service/inputs.ts";
import { storescu, writeStorescuConfig } from "../test/service/peers.ts";
import { queueCostPerStudyMs } from "./store-cost.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const STUDIES = arg("--studies", 16);
const INPUT_SIZE = arg("--input-size", 224);
const QUEUE_N = arg("--queue-n", 200);
const TARGET = 1.8;
const TIMEOUT_MS = 30 * 60_000;

const work = mkdtempSync(join(tmpdir(), "cxr-bench-scale-"));
const loadBefore = loadavg();
const server = await startPostgres({ durable: true });
const orthanc = await startOrthanc({ dir: join(work, "orthanc") });
const children: ChildProcess[] = [];
let batch = 0;

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** The machine's busy and total CPU time so far (all cores, every process, other users' too), from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const t = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = t[3]! + t[4]!;
  const total = t.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** `taskset -c <core> cxr serve`; resolves once it logged "listener ready". */
function serveOn(core: number, configPath: string, logPath: string): Promise<ChildProcess> {
  const child = spawn("taskset", ["-c", String(core), process.execPath, "bin/cxr.js", "serve", "--config", configPath], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const log = createWriteStream(logPath);
  child.stderr!.pipe(log);
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      log.write(d);
      if (d.toString().includes('"msg":"listener ready"')) resolve(child);
    });
    child.once("exit", (code) => reject(new Error(`cxr serve on core ${core} exited (${code}) before it was ready; see ${logPath}`)));
  });
}

async function waitExported(observer: Store, studies: string[]): Promise<void> {
  const deadline = performance.now() + TIMEOUT_MS;
  for (;;) {
    const recs = await Promise.all(studies.map((s) => observer.get(s)));
    const bad = recs.find((r) => r?.state === "failed" || r?.state === "rejected");
    if (bad) throw new Error(`study ${bad.studyInstanceUid} ${bad.state}: ${bad.reason}`);
    if (recs.every((r) => r?.state === "exported")) return;
    if (performance.now() > deadline) throw new Error(`studies not exported after ${TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Studies/second of `cores.length` nodes (one per core) on a fresh database and data folder. */
interface RunResult {
  nodes: number;
  studies: number;
  seconds: number;
  studiesPerSecond: number;
  byNode: Record<string, number>;
  /** Share of its core each node used in the timed window (CPU seconds / wall seconds): below 1 = it waited (I/O, peers, other processes). */
  nodeCoreShare: Record<string, number>;
  /** Orthanc's CPU seconds / wall seconds in the window (it runs on the same cores). */
  orthancCoreShare: number;
  /** Busy share of the whole machine in the window (all processes, other users' too). */
  machineBusy: number;
}

async function run(cores: number[]): Promise<RunResult> {
  const tag = `${cores.length}-node`;
  const url = await server.createDatabase();
  const aet = "CXR_SCALE";
  const ports: number[] = [];
  for (const core of cores) {
    const port = await freePort();
    ports.push(port);
    const nodeId = `core-${core}`;
    const configPath = join(work, `${tag}-${nodeId}.json`);
    writeFileSync(configPath, JSON.stringify({
      dataDir: join(work, `${tag}-data`),
      logLevel: "info",
      model: { dir: join(work, "model"), threads: 1 },
      dicom: { aeTitle: aet, port, acceptedSopClasses: [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.SECONDARY_CAPTURE] },
      intake: { stableAgeSeconds: 30, singleImageImmediately: true },
      pipeline: { concurrency: 1 },
      export: { destinations: [{ aeTitle: orthanc.aet, host: "127.0.0.1", port: orthanc.dicomPort }], retryInitialSeconds: 0.2 },
      api: { httpPort: 0, tokens: ["scale-bench-token-0123456789"] },
      store: { kind: "postgres", url, nodeId, leaseSeconds: 120 },
    }));
    await serveOn(core, configPath, join(work, `${tag}-${nodeId}.log`));
  }
  const observer = await openStore({ kind: "postgres", url, nodeId: "bench-observer", leaseSeconds: 120 }, { dataDir: work });
  const cfg = writeStorescuConfig(work);
  const sendSplit = async (inputs: { path: string }[]) => {
    const sent = await Promise.all(ports.map((port, n) => storescu({ port, aec: aet, cfg, files: inputs.filter((_, i) => i % ports.length === n).map((s) => s.path) })));
    for (const r of sent) if (r.code !== 0) throw new Error(`storescu: ${r.log.slice(-600)}`);
  };
  try {
    const dir = mkdtempSync(join(work, `in-${batch++}-`));
    // Warm-up: one study per node, sent to its own listener (each node claims what it assembles first).
    const warm = reUidStudies(dir, ports.length);
    await sendSplit(warm);
    await waitExported(observer, warm.map((s) => s.studyInstanceUid));
    const timedDir = mkdtempSync(join(work, `in-${batch++}-`));
    const inputs = reUidStudies(timedDir, STUDIES);
    const pids = children.map((c) => c.pid!);
    const cpu0 = pids.map(cpuSeconds);
    const orthanc0 = cpuSeconds(orthanc.process.pid!);
    const machine0 = machineTicks();
    const t0 = performance.now();
    await sendSplit(inputs);
    await waitExported(observer, inputs.map((s) => s.studyInstanceUid));
    const seconds = (performance.now() - t0) / 1000;
    const machine1 = machineTicks();
    const nodeCoreShare = Object.fromEntries(cores.map((core, k) => [`core-${core}`, +((cpuSeconds(pids[k]!) - cpu0[k]!) / seconds).toFixed(2)]));
    const orthancCoreShare = +((cpuSeconds(orthanc.process.pid!) - orthanc0) / seconds).toFixed(2);
    const machineBusy = +((machine1.busy - machine0.busy) / (machine1.total - machine0.total)).toFixed(2);
    const byNode: Record<string, number> = {};
    for (const s of inputs) {
      const by = (await observer.get(s.studyInstanceUid))!.processedBy ?? "?";
      byNode[by] = (byNode[by] ?? 0) + 1;
    }
    return { nodes: cores.length, studies: STUDIES, seconds: +seconds.toFixed(2), studiesPerSecond: +(STUDIES / seconds).toFixed(4), byNode, nodeCoreShare, orthancCoreShare, machineBusy };
  } finally {
    await observer.close();
    for (const c of children.splice(0)) {
      c.kill("SIGTERM");
      if (c.exitCode === null && c.signalCode === null) await new Promise((r) => c.once("exit", r));
    }
  }
}

const row = (name: string, r: RunResult) =>
  `${name.padEnd(31)} ${String(r.studies).padStart(7)}   ${r.seconds.toFixed(1).padStart(7)}   ${r.studiesPerSecond.toFixed(3).padStart(9)}   ${Object.values(r.nodeCoreShare).map((v) => v.toFixed(2)).join(" / ").padStart(15)}   ${r.orthancCoreShare.toFixed(2).padStart(13)}   ${r.machineBusy.toFixed(2).padStart(12)}`;

try {
  initModelDir({ inputSize: INPUT_SIZE, seed: 1, out: join(work, "model") });
  const one = await run([0]);
  const two = await run([0, 1]);
  const ratio = +(two.studiesPerSecond / one.studiesPerSecond).toFixed(3);

  const sqlite = openSqliteStore(join(work, "queue.sqlite"), { nodeId: "bench" });
  const sqliteMs = await queueCostPerStudyMs(sqlite, QUEUE_N);
  await sqlite.close();
  const postgres = await openStore({ kind: "postgres", url: await server.createDatabase(), nodeId: "bench", leaseSeconds: 60 }, { dataDir: work });
  const postgresMs = await queueCostPerStudyMs(postgres, QUEUE_N);
  await postgres.close();

  const result = {
    bench: "scale",
    cores: availableParallelism(),
    note: `this machine has ${availableParallelism()} cores: the two-node run pins one node to each, so PostgreSQL, Orthanc, storescu and this process share those same cores with the nodes`,
    model: `DenseNet121-14 built by \`cxr model init\` (seeded, untrained), input ${INPUT_SIZE}, CPU, 1 ORT thread per node`,
    peer: "PostgreSQL (Debian, private, fsync on) + Orthanc (fixtures/orthanc/orthanc.json)",
    loadAverageBefore: loadBefore.map((l) => +l.toFixed(2)),
    loadAverageAfter: loadavg().map((l) => +l.toFixed(2)),
    oneNode: one,
    twoNodes: two,
    ratio,
    target: TARGET,
    queueCostPerStudyMs: { n: QUEUE_N, sqlite: +sqliteMs.toFixed(3), postgres: +postgresMs.toFixed(3), ratio: +(postgresMs / sqliteMs).toFixed(2) },
  };
  console.log(JSON.stringify(result));
  console.log([
    "",
    "nodes (1 core each, taskset)    studies   seconds   studies/s   node core share   Orthanc cores   machine busy",
    row("1 (core 0)", one),
    row("2 (cores 0, 1)", two),
    `ratio (2 nodes / 1 node): ${ratio}  (target ≥ ${TARGET})`,
    "",
    "queue per study (claim, state changes, export records)   ms/study   × SQLite",
    `sqlite (WAL, synchronous=NORMAL)                         ${sqliteMs.toFixed(2).padStart(8)}   1.00`,
    `postgresql (every commit flushed)                        ${postgresMs.toFixed(2).padStart(8)}   ${result.queueCostPerStudyMs.ratio.toFixed(2)}`,
    "",
    `NOTE: ${result.note}.`,
    `load average before ${result.loadAverageBefore.join(" ")}, after ${result.loadAverageAfter.join(" ")}`,
  ].join("\n"));
} finally {
  for (const c of children) c.kill("SIGKILL");
  await orthanc.stop();
  await server.stop();
  if (process.argv.includes("--keep")) console.error(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
