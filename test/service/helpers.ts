import { execFile } from "node:child_process";
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
