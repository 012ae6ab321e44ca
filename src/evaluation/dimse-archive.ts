import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import dimse from "dcmjs-dimse";
import type { SelectionConfig } from "../config/service.ts";
import { readDicom } from "../dicom/read.ts";
import { extractHeader } from "../intake/header.ts";
import { judgeInstance, selectStudy, type SelectableInstance } from "../intake/selection.ts";

const { Client } = dimse;
const { CFindRequest, CGetRequest } = dimse.requests;
const { CStoreResponse } = dimse.responses;
const { Status } = dimse.constants;

/** A query/retrieve SCP: `AET@host:port` (the --dimse flag), and the AE title we call it from. */
export interface DimsePeer {
  aeTitle: string;
  host: string;
  port: number;
  callingAeTitle: string;
  timeoutSeconds?: number;
}

export function parseDimsePeer(spec: string, callingAeTitle: string): DimsePeer {
  const m = /^([^@]{1,16})@(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(spec.trim());
  if (!m) throw new Error(`--dimse "${spec}": expected <AET>@<host>:<port>, e.g. ORTHANC@127.0.0.1:4242`);
  return { aeTitle: m[1]!, host: m[2]!.replace(/^\[|\]$/g, ""), port: Number(m[3]), callingAeTitle };
}

const peerName = (p: DimsePeer) => `${p.aeTitle}@${p.host}:${p.port}`;
type Elements = Record<string, unknown>;
type Req = InstanceType<typeof CFindRequest> | InstanceType<typeof CGetRequest>;

/**
 * One association carrying `request`; resolves with the C-FIND matches (Pending datasets) once the
 * association is closed with a final Success status. C-STORE sub-operations of a C-GET are written
 * into `storeDir` (<SOP Instance UID>.dcm) and answered Success only once written.
 */
function run(peer: DimsePeer, what: string, request: Req, storeDir?: string): Promise<Elements[]> {
  return new Promise((resolve, reject) => {
    const matches: Elements[] = [];
    let final: number | undefined;
    let failure = "";
    const client = new Client();
    request.on("response", (r: { getStatus(): number; getDataset(): { getElements(): Elements } | undefined; getErrorComment?(): string; getFailures?(): number }) => {
      const status = r.getStatus();
      if (status === Status.Pending) {
        const ds = r.getDataset();
        if (ds) matches.push(ds.getElements());
      } else {
        final = status;
        if (r.getFailures && r.getFailures() > 0) failure = `${r.getFailures()} sub-operations failed`;
      }
    });
    if (storeDir) {
      mkdirSync(storeDir, { recursive: true });
      client.on("cStoreRequest", (req: { getDataset(): { getElement(t: string): string | undefined; toFile(p: string, cb: (e?: Error) => void): void } | undefined }, callback: (r: unknown) => void) => {
        const response = CStoreResponse.fromRequest(req as never);
        const ds = req.getDataset();
        const sop = ds?.getElement("SOPInstanceUID");
        if (!ds || !sop || !/^[0-9.]+$/.test(sop)) {
          response.setStatus(0xc000);
          return callback(response);
        }
        ds.toFile(join(storeDir, `${sop}.dcm`), (err) => {
          response.setStatus(err ? 0xa700 : Status.Success);
          callback(response);
        });
      });
    }
    const ms = (peer.timeoutSeconds ?? 60) * 1000;
    const timer = setTimeout(() => {
      failure ||= `no answer within ${ms / 1000} s`;
      try {
        client.abort();
      } catch {
        /* not connected */
      }
    }, ms);
    client.on("associationRejected", (r: { result: number; source: number; reason: number }) => (failure = `association rejected (result ${r.result}, source ${r.source}, reason ${r.reason})`));
    client.on("networkError", (e: Error) => (failure ||= `network error: ${e.message}`));
    client.on("closed", () => {
      clearTimeout(timer);
      if (final === Status.Success || (final !== undefined && (final & 0xf000) === 0xb000 && !failure)) resolve(matches);
      else reject(new Error(`${what} at ${peerName(peer)}: ${failure || (final === undefined ? "no final response" : `status 0x${final.toString(16).padStart(4, "0")}`)}`));
    });
    client.addRequest(request);
    client.send(peer.host, peer.port, peer.callingAeTitle, peer.aeTitle, { connectTimeout: ms, associationTimeout: ms, pduTimeout: ms });
  });
}

const text = (v: unknown) => (typeof v === "string" ? v : Array.isArray(v) && typeof v[0] === "string" ? v[0] : undefined);

/** Headers of the Part 10 files of a folder, as series selection sees them, with their paths. */
function localInstances(dir: string): (SelectableInstance & { path: string })[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".dcm"))
    .map((f) => {
      const path = join(dir, f);
      const h = extractHeader(readDicom(path, { withPixelData: false }).dataset);
      if (!h.sopInstanceUid || !h.sopClassUid || !h.seriesInstanceUid) throw new Error(`${path}: retrieved instance lacks its SOP Instance, SOP Class or Series Instance UID`);
      return { path, sopInstanceUid: h.sopInstanceUid, sopClassUid: h.sopClassUid, seriesInstanceUid: h.seriesInstanceUid, header: h.header };
    });
}

/**
 * An archive reached by DIMSE query/retrieve (PS3.4 C.4): C-FIND at study level (by Accession
 * Number) or image level (by SOP Instance UID), then C-GET of the study (or series) into
 * <dir>/<Study Instance UID>/ — kept, so a resumed audit does not fetch it again — and the plugin's
 * own series selection on the retrieved headers, as the DICOMweb audit does on WADO-RS metadata.
 */
export class DimseArchive {
  constructor(readonly peer: DimsePeer) {}

  get name(): string {
    return `PACS (DIMSE C-FIND/C-GET) ${peerName(this.peer)}`;
  }

  async image(keyColumn: string, key: string, selection: SelectionConfig, dir: string): Promise<{ study: string; sop: string; path: string }> {
    if (keyColumn === "SOPInstanceUID") {
      const found = await run(this.peer, `C-FIND (image, SOPInstanceUID ${key})`, CFindRequest.createImageFindRequest({ SOPInstanceUID: key, StudyInstanceUID: "", SeriesInstanceUID: "" }));
      if (found.length === 0) throw new Error(`no instance with SOPInstanceUID ${key} in the PACS`);
      const study = text(found[0]!.StudyInstanceUID);
      const series = text(found[0]!.SeriesInstanceUID);
      if (!study || !series) throw new Error(`C-FIND answer for SOPInstanceUID ${key} lacks Study/Series Instance UID`);
      const studyDir = join(dir, study);
      let inst = localInstances(studyDir).find((i) => i.sopInstanceUid === key);
      if (!inst) {
        await run(this.peer, `C-GET (series ${series})`, CGetRequest.createSeriesGetRequest(study, series), studyDir);
        inst = localInstances(studyDir).find((i) => i.sopInstanceUid === key);
      }
      if (!inst) throw new Error(`C-GET of series ${series} of study ${study} did not return instance ${key}`);
      const decision = judgeInstance(inst, selection);
      if (!decision.eligible) throw new Error(`study ${study}, instance ${key}: not read by the plugin's selection: ${decision.reason}`);
      return { study, sop: key, path: inst.path };
    }
    const studies = await run(this.peer, `C-FIND (study, AccessionNumber ${key})`, CFindRequest.createStudyFindRequest({ AccessionNumber: key, StudyInstanceUID: "" }));
    if (studies.length === 0) throw new Error(`no study with AccessionNumber ${key} in the PACS`);
    if (studies.length > 1) throw new Error(`${studies.length} studies share AccessionNumber ${key}; cannot tell which one was labelled`);
    const study = text(studies[0]!.StudyInstanceUID);
    if (!study) throw new Error(`C-FIND answer for AccessionNumber ${key} lacks the Study Instance UID`);
    const studyDir = join(dir, study);
    if (localInstances(studyDir).length === 0) await run(this.peer, `C-GET (study ${study})`, CGetRequest.createStudyGetRequest(study), studyDir);
    const instances = localInstances(studyDir);
    if (instances.length === 0) throw new Error(`study ${study} has no instances`);
    const chosen = selectStudy(instances, selection);
    if (!chosen.chosen) throw new Error(`study ${study}: not read by the plugin's selection: ${chosen.reason}`);
    return { study, sop: chosen.chosen.sopInstanceUid, path: chosen.chosen.path };
  }
}
