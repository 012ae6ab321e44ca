import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { CliError } from "../main.ts";
import { readDicom } from "../../dicom/read.ts";
import { deriveUid } from "../../dicom/uid.ts";
import type { ModelCard } from "../../model/card.ts";
import { initModelDir } from "../../model/model-dir.ts";
import { startOrthanc, type OrthancHandle } from "../../peers/orthanc.ts";
import { freePort, portIsFree } from "../../peers/ports.ts";
import { buildDemoModel, hasDemoModel } from "../../training/demo.ts";
import { makeGateDemoCases } from "../../gate/demo-cases.ts";
import { ensureViewerBuilt } from "../../viewer-extension/index.ts";
import { generateApiToken, type ApiStudy } from "../../worklist/server.ts";

/**
 * `cxr demo`: the whole product on one machine. A local Orthanc plays the hospital PACS, the plugin
 * (`cxr serve`) is registered in it as the DICOM node "cxr", the shared chest files are uploaded to
 * Orthanc and Orthanc routes them to the plugin (REST /modalities/cxr/store), and the results come
 * back to Orthanc. Stays up until Ctrl-C.
 */

const REPO = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
export const DEFAULT_DEMO_SOURCE = resolve(REPO, "../shared/data/dicom");
export const DEFAULT_DEMO_DATA_DIR = resolve(REPO, "data/demo");
export const DEMO_CONFIG_TEMPLATE = join(REPO, "fixtures/demo/cxr-demo.yaml");
/** The chest files of ../shared/data/dicom: test1-3 and the RSNA CR are triaged; test4-6 are stopped by series selection, the fake MONOCHROME1 copy (and GATE_DEMO_CASES) by the image gate. */
export const DEMO_FILES = [
  "test1.dcm",
  "test2.dcm",
  "test3.dcm",
  "test4.dcm",
  "test5.dcm",
  "test6.dcm",
  "rsna_cr_jpeg_baseline.dcm",
  "rsna_cr_jpeg_baseline_fake_monochrome1.dcm",
] as const;
/** The AE title under which Orthanc knows the plugin (fixtures/orthanc/orthanc.json, modality "cxr"). */
export const DEMO_PLUGIN_AET = "CXR_TRIAGE";
const FINAL_STATES = new Set(["exported", "failed", "rejected"]);

export interface DemoInstance {
  file: string;
  /** The file uploaded to Orthanc: the shared original, or a re-identified copy (see `note`). */
  path: string;
  studyInstanceUid: string;
  note?: string;
}

/**
 * The demo's input files. Some shared files are the same SOP Instance as another with different
 * headers (test4-6 reuse test1's UIDs; the MONOCHROME1 RSNA file reuses the other's). A PACS keeps one
 * object per SOP Instance UID, so those copies get new Study/Series/SOP Instance UIDs derived from the
 * file name (dcmtk `dcmodify`, pixel data untouched) and arrive as studies of their own.
 */
export function prepareDemoFiles(sourceDir: string, workDir: string): DemoInstance[] {
  const missing = DEMO_FILES.filter((f) => !existsSync(join(sourceDir, f)));
  if (missing.length > 0) throw new CliError(`demo input missing in ${sourceDir}: ${missing.join(", ")} (the shared data folder ../shared/data/dicom, or --source)`);
  mkdirSync(workDir, { recursive: true });
  const firstBySop = new Map<string, string>();
  const shared: DemoInstance[] = DEMO_FILES.map((file) => {
    const path = join(sourceDir, file);
    const header = readDicom(path, { withPixelData: false }).dataset;
    const sop = String(header.SOPInstanceUID ?? "");
    const study = String(header.StudyInstanceUID ?? "");
    if (!sop || !study) throw new CliError(`${path}: no SOP Instance UID or Study Instance UID`);
    const original = firstBySop.get(sop);
    if (original === undefined) {
      firstBySop.set(sop, file);
      return { file, path, studyInstanceUid: study };
    }
    const copy = join(workDir, file);
    const uids = { study: deriveUid("cxr-demo", file, "study"), series: deriveUid("cxr-demo", file, "series"), sop: deriveUid("cxr-demo", file, "sop") };
    copyFileSync(path, copy);
    execFileSync("dcmodify", ["-nb", "-m", `(0020,000d)=${uids.study}`, "-m", `(0020,000e)=${uids.series}`, "-m", `(0008,0018)=${uids.sop}`, copy], { stdio: "pipe" });
    return { file, path: copy, studyInstanceUid: uids.study, note: `same SOP Instance UID as ${original}: sent with new UIDs` };
  });
  // Made from the shared files for the image-content gate to stop (src/gate/demo-cases.ts).
  return [...shared, ...makeGateDemoCases(sourceDir, workDir).map((c) => ({ file: c.file, path: c.path, studyInstanceUid: c.studyInstanceUid, note: c.note }))];
}

/**
 * The demo model, written into the data folder on every start (a few seconds, deterministic): the
 * project's trained demo model (models/demo, `cxr model demo`) when the checkout has it, else a seeded
 * untrained DenseNet121-14 (`cxr model init --seed 1 --input-size 224`), which the page flags as such.
 */
export function ensureDemoModel(dir: string): ModelCard {
  return hasDemoModel() ? buildDemoModel(dir) : initModelDir({ inputSize: 224, seed: 1, out: dir });
}

export interface DemoOptions {
  dataDir: string;
  sourceDir: string;
  /** Port of the worklist page and API; 0 picks a free one. */
  httpPort: number;
  apiToken: string;
  out: (line: string) => void;
}

export interface DemoRun {
  worklistUrl: string;
  orthancUrl: string;
  /** Resolves when every demo study reached exported, failed or rejected. */
  settled: Promise<void>;
  /** Stops the plugin (SIGTERM, then SIGKILL after 20 s) and Orthanc; resolves true when the plugin exited cleanly (status 0). */
  stop(): Promise<boolean>;
}

async function waitForHealth(url: string, service: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (service.exitCode !== null || service.signalCode !== null) throw new CliError(`the plugin service exited during start (${service.exitCode ?? service.signalCode}); see ${log}:\n${tail(log)}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new CliError(`the plugin service did not answer on ${url}/healthz within 120 s; see ${log}`);
}

function tail(path: string, lines = 15): string {
  return existsSync(path) ? readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n") : "";
}

/**
 * SIGTERM, then SIGKILL after `graceMs`; resolves with how the process ended ("exit 0", "SIGKILL"...).
 * Not SIGINT: after a Ctrl-C in a terminal the child has had its own SIGINT already (the whole
 * foreground process group gets it) and is shutting down; a second SIGINT would cut that short.
 */
function stopChild(child: ChildProcess, graceMs: number): Promise<string> {
  const ended = () => (child.signalCode !== null ? child.signalCode : `exit ${child.exitCode}`);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(`already ended (${ended()})`);
  return new Promise((res) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      res(ended());
    });
    child.kill("SIGTERM");
  });
}

export async function runDemo(opts: DemoOptions): Promise<DemoRun> {
  const { out } = opts;
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const instances = prepareDemoFiles(opts.sourceDir, join(dataDir, "reidentified"));

  const modelDir = join(dataDir, "model");
  const card = ensureDemoModel(modelDir);
  const trained = card.training.data !== undefined;
  out(`model: ${card.name} ${card.version} (${modelDir}, ${hasDemoModel() ? "the project's demo model, models/demo" : "models/demo is absent: seeded random weights"})`);
  out(trained ? `  trained on: ${card.training.data}` : `  UNTRAINED — the findings are not meaningful: ${card.training.summary}`);

  // The worklist works without the viewer: a failed build is reported, and the demo goes on.
  await ensureViewerBuilt({ log: (m) => out(m) }).catch((err: Error) => out(`viewer page unavailable: ${err.message}`));

  const [orthancHttp, orthancDicom, pluginDicom] = [await freePort(), await freePort(), await freePort()];
  const httpPort = opts.httpPort === 0 ? await freePort() : opts.httpPort;
  let orthanc: OrthancHandle | undefined;
  let service: ChildProcess | undefined;
  let stopping: Promise<boolean> | undefined;
  let polling = true;
  const stop = () =>
    (stopping ??= (async () => {
      polling = false;
      const ended = service ? await stopChild(service, 20_000) : "exit 0";
      if (ended !== "exit 0") out(`the plugin service did not exit cleanly: ${ended}`);
      await orthanc?.stop();
      return ended === "exit 0";
    })());

  try {
    orthanc = await startOrthanc({
      dir: join(dataDir, "orthanc"),
      httpPort: orthancHttp,
      dicomPort: orthancDicom,
      modalities: { cxr: [DEMO_PLUGIN_AET, "127.0.0.1", pluginDicom] },
    });
    out(`PACS: Orthanc ${orthanc.httpUrl} (AE ${orthanc.aet}, DICOM port ${orthanc.dicomPort}; data ${orthanc.dir})`);

    // The repo's demo configuration plus what exists only now; the token goes in the file (mode 600), not on a command line.
    const config = parseYaml(readFileSync(DEMO_CONFIG_TEMPLATE, "utf8")) as Record<string, Record<string, unknown>>;
    config.api = { ...config.api, tokens: [opts.apiToken], pacsDicomWebUrl: `${orthanc.httpUrl}/dicom-web` };
    const configPath = join(dataDir, "cxr-demo.yaml");
    writeFileSync(configPath, `# written by cxr demo from ${DEMO_CONFIG_TEMPLATE}\n${stringifyYaml(config)}`, { mode: 0o600 });

    const serviceLog = join(dataDir, "service.log");
    const logStream = createWriteStream(serviceLog, { flags: "a" });
    const args = [
      join(REPO, "bin/cxr.js"),
      "serve",
      "--config", configPath,
      "--data-dir", join(dataDir, "service"),
      "--model", modelDir,
      "--ae-title", DEMO_PLUGIN_AET,
      "--port", String(pluginDicom),
      "--bind", "127.0.0.1",
      "--http-port", String(httpPort),
      "--destination", `${orthanc.aet}@127.0.0.1:${orthanc.dicomPort}`,
    ];
    service = spawn(process.execPath, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    // Both streams write into one log, so neither may end it: it ends once the process and its pipes closed.
    service.stdout!.pipe(logStream, { end: false });
    service.stderr!.pipe(logStream, { end: false });
    service.once("close", () => logStream.end());
    const apiUrl = `http://127.0.0.1:${httpPort}`;
    await waitForHealth(apiUrl, service, serviceLog);
    // A plugin that dies later must not leave the demo looking alive.
    service.once("exit", (code, signal) => {
      if (stopping) return;
      polling = false;
      out(`the plugin service exited unexpectedly (${signal ?? `exit ${code}`}); see ${serviceLog}:\n${tail(serviceLog)}`);
    });
    out(`plugin: AE ${DEMO_PLUGIN_AET} on DICOM port ${pluginDicom}, API ${apiUrl} (log ${serviceLog})`);

    // Upload to the PACS, then have the PACS send the new images to the plugin, as its routing rule
    // would: the images only, not whole studies, which hold the plugin's SR/SC after a first run.
    const orthancInstances: string[] = [];
    for (const inst of instances) {
      const stored = await orthanc.rest<{ ID: string; Status: string }>("/instances", { body: readFileSync(inst.path) });
      orthancInstances.push(stored.ID);
      out(`  ${inst.file.padEnd(44)} study ${inst.studyInstanceUid}${inst.note ? `  (${inst.note})` : ""}`);
    }
    await orthanc.rest("/modalities/cxr/store", { body: { Resources: orthancInstances, Synchronous: true } });
    out(`Orthanc sent the ${orthancInstances.length} images to the plugin (POST /modalities/cxr/store)`);

    const worklistUrl = `${apiUrl}/?token=${encodeURIComponent(opts.apiToken)}`;
    const expected = new Map<string, string[]>();
    for (const inst of instances) expected.set(inst.studyInstanceUid, [...(expected.get(inst.studyInstanceUid) ?? []), inst.file]);

    // Report each demo study's progress as the plugin works through them.
    const settled = (async () => {
      const seen = new Map<string, string>();
      while (polling) {
        const r = await fetch(`${apiUrl}/api/studies`, { headers: { Authorization: `Bearer ${opts.apiToken}` } }).catch(() => undefined);
        if (r?.ok) {
          const studies = (await r.json()) as ApiStudy[];
          for (const s of studies) {
            const files = expected.get(s.studyInstanceUid);
            const line = `${s.state} ${s.priority} ${s.reason}`;
            if (!files || seen.get(s.studyInstanceUid) === line) continue;
            seen.set(s.studyInstanceUid, line);
            if (FINAL_STATES.has(s.state)) out(`  ${files.join(", ").padEnd(44)} ${s.state.padEnd(9)} ${s.priority.padEnd(8)} ${s.reason}`);
          }
          const done = [...expected.keys()].every((uid) => FINAL_STATES.has(studies.find((s) => s.studyInstanceUid === uid)?.state ?? ""));
          if (done) {
            out(`all ${expected.size} demo studies are on the worklist with their results`);
            return;
          }
        }
        await new Promise((res) => setTimeout(res, 1000));
      }
    })();

    return { worklistUrl, orthancUrl: orthanc.httpUrl, settled, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

const DEFAULT_DEMO_HTTP_PORT = 8080;

/** Opens the page in the desktop's browser, where there is a desktop. */
function openBrowser(url: string, out: (line: string) => void): void {
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return;
  const child = spawn("xdg-open", [url], { stdio: "ignore", detached: true });
  child.on("error", () => out("(could not start xdg-open: open the URL yourself)"));
  child.unref();
}

export function register(program: Command): void {
  program
    .command("demo")
    .description("run the whole product locally: Orthanc as the PACS, the plugin, the shared chest files routed through it; prints the worklist URL and stays up until Ctrl-C")
    .option("--data-dir <dir>", "folder for Orthanc, the plugin's store and the demo model", DEFAULT_DEMO_DATA_DIR)
    .option("--source <dir>", "folder with the shared chest DICOM files", DEFAULT_DEMO_SOURCE)
    .option("--http-port <n>", "port of the worklist page and API (0 = any free port; default 8080, or a free one when 8080 is taken)")
    .option("--api-token <token>", "bearer token for the API and page (default: a new random one)")
    .option("--no-browser", "do not open the worklist in the desktop's browser")
    .action(async (opts: { dataDir: string; source: string; httpPort?: string; apiToken?: string; browser: boolean }) => {
      let httpPort = Number(opts.httpPort ?? DEFAULT_DEMO_HTTP_PORT);
      if (!Number.isInteger(httpPort) || httpPort < 0 || httpPort > 65535) throw new CliError(`--http-port must be a port number, got "${opts.httpPort}"`);
      if (opts.httpPort === undefined && !(await portIsFree(httpPort))) {
        httpPort = await freePort();
        process.stdout.write(`port ${DEFAULT_DEMO_HTTP_PORT} is taken: the worklist uses port ${httpPort}\n`);
      }
      if (opts.apiToken !== undefined && opts.apiToken.length < 16) throw new CliError("--api-token needs at least 16 characters");
      const out = (line: string) => process.stdout.write(`${line}\n`);
      // Listen for Ctrl-C from the start, so that a stop during start-up still shuts everything down.
      const stopRequested = new Promise<NodeJS.Signals>((res) => {
        process.once("SIGINT", res);
        process.once("SIGTERM", res);
      });
      const run = await runDemo({ dataDir: opts.dataDir, sourceDir: resolve(opts.source), httpPort, apiToken: opts.apiToken ?? generateApiToken(), out });
      out("");
      out(`worklist: ${run.worklistUrl}`);
      out(`PACS:     ${run.orthancUrl}/app/explorer.html  (Orthanc Explorer: the SR and SC results arrive here)`);
      out("Ctrl-C stops Orthanc and the plugin.");
      if (opts.browser) openBrowser(run.worklistUrl, out);
      const signal = await stopRequested;
      out(`${signal}: stopping the plugin and Orthanc…`);
      const clean = await run.stop();
      await run.settled;
      if (!clean) throw new CliError("stopped, but the plugin service did not shut down cleanly (see its log)");
      out("stopped.");
    });
}
