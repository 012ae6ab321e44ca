import { afterAll, beforeAll } from "vitest";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { initModelDir } from "../../src/model/model-dir.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { openStore, type Store, type StudyRecord } from "../../src/store/index.ts";
import { startPostgres, type PrivatePostgres } from "../helpers/postgres.ts";
import { tempDir } from "../helpers/tmp.ts";
import { waitFor } from "./helpers.ts";

/**
 * What the cluster tests share, started before their tests and stopped after: a private PostgreSQL,
 * Orthanc as the PACS, a small model in the test folder, the node processes the test starts (killed
 * after) and an observer store on the test's database.
 */
export interface ClusterFixture {
  tmp: ReturnType<typeof tempDir>;
  pg: PrivatePostgres;
  orthanc: OrthancHandle;
  /** The test's `cxr serve` processes: each is killed (-9) after the tests if it still runs. */
  children: ChildProcess[];
  /** A store on `url` that is no node, to watch the studies (closed after the tests). */
  observe(url: string, leaseSeconds: number): Promise<Store>;
}

export function clusterFixture(tmpPrefix: string): ClusterFixture {
  let observer: Store | undefined;
  const fx = {
    tmp: tempDir(tmpPrefix),
    children: [] as ChildProcess[],
    async observe(url: string, leaseSeconds: number) {
      observer = await openStore({ kind: "postgres", url, nodeId: "observer", leaseSeconds }, { dataDir: fx.tmp.dir });
      return observer;
    },
  } as ClusterFixture;
  beforeAll(async () => {
    fx.pg = await startPostgres();
    fx.orthanc = await startOrthanc({ dir: join(fx.tmp.dir, "orthanc") });
    initModelDir({ inputSize: 64, seed: 1, out: join(fx.tmp.dir, "model") });
  });
  afterAll(async () => {
    for (const c of fx.children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await observer?.close();
    await fx.orthanc?.stop();
    await fx.pg?.stop();
    fx.tmp.cleanup();
  });
  return fx;
}

/**
 * Freezes `node` (SIGSTOP: it can change nothing more) at a moment it holds one of `studies` in
 * processing, then kills it (-9); that study's record as it was then.
 */
export async function killWhileProcessing(node: ChildProcess, nodeId: string, studies: string[], observer: Store): Promise<StudyRecord> {
  const stuck = await waitFor(`${nodeId} in the middle of a study`, async () => {
    node.kill("SIGSTOP");
    const rec = (await Promise.all(studies.map((s) => observer.get(s)))).find((r) => r?.state === "processing" && r.processedBy === nodeId);
    if (!rec) node.kill("SIGCONT");
    return rec;
  }, 120_000, 20);
  node.kill("SIGKILL");
  return stuck;
}
