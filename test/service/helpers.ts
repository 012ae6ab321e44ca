import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
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

/** `cxr serve --config <file>` as a child process; resolves once it logged "listener ready". */
export function serve(configPath: string, logPath: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["bin/cxr.js", "serve", "--config", configPath], { stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logPath, { flags: "a" });
  child.stderr!.pipe(log);
  return new Promise((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      log.write(d);
      buf += d.toString();
      if (buf.includes('"msg":"listener ready"')) {
        buf = "";
        resolve(child);
      }
    });
    child.on("exit", (code) => reject(new Error(`cxr serve exited (${code}) before it was ready; see ${logPath}`)));
  });
}
