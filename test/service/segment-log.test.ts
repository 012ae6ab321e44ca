import { afterEach, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readdirSync, writeSync } from "node:fs";
import { join } from "node:path";
import { replayLog, SegmentLog, type LoggedInstance } from "../../src/dicom-listener/segment-log.ts";
import { tempDir } from "../helpers/tmp.ts";

const SEGMENT = 64 << 10;

/** Writes `data` as one instance in fragments of `fragment` bytes; seals it unless told not to. */
async function write(log: SegmentLog, name: string, data: Buffer, opts: { seal?: boolean; fragment?: number } = {}): Promise<LoggedInstance> {
  const inst = log.begin({ sopInstanceUid: name });
  const fragment = opts.fragment ?? 4096;
  for (let at = 0; at < data.length; at += fragment) inst.append(data.subarray(at, at + fragment));
  if (opts.seal !== false) await inst.seal({ studyInstanceUid: `study-of-${name}` });
  return inst;
}

async function replayed(dir: string): Promise<Map<string, Buffer>> {
  const { instances, close } = replayLog(dir);
  try {
    const out = new Map<string, Buffer>();
    for (const i of instances) {
      const parts: Buffer[] = [];
      for await (const b of i.read()) parts.push(b);
      expect(i.commit.studyInstanceUid).toBe(`study-of-${String(i.begin.sopInstanceUid)}`);
      out.set(String(i.begin.sopInstanceUid), Buffer.concat(parts));
    }
    return out;
  } finally {
    close();
  }
}

describe("spool log (segments, group commit, replay)", () => {
  let tmp: ReturnType<typeof tempDir>;
  let log: SegmentLog | undefined;
  afterEach(async () => {
    await log?.close();
    log = undefined;
    tmp?.cleanup();
  });
  const open = async () => {
    tmp = tempDir("cxr-segment-log-");
    log = await SegmentLog.open({ dir: join(tmp.dir, "log"), segmentBytes: SEGMENT });
    return { log, dir: join(tmp.dir, "log") };
  };

  it("replays sealed instances byte for byte, across segments; leaves out one that was never sealed and one withdrawn", async () => {
    const { log, dir } = await open();
    const a = randomBytes(150_000); // more than two segments
    const b = randomBytes(10_000);
    await write(log, "a", a);
    await write(log, "b", b);
    const w = await write(log, "withdrawn", randomBytes(5000));
    w.withdraw();
    await write(log, "cut-off", randomBytes(30_000), { seal: false });
    await log.commit();
    const found = await replayed(dir);
    expect([...found.keys()]).toEqual(["a", "b"]);
    expect(found.get("a")!.equals(a)).toBe(true);
    expect(found.get("b")!.equals(b)).toBe(true);
  });

  it("a crash in the middle of a segment: a torn record ends the replay there, every instance sealed before it is kept", async () => {
    const { log, dir } = await open();
    const kept = randomBytes(20_000);
    await write(log, "kept", kept);
    // Sealed in the log but its data torn (a crash during its flush: it was never answered Success).
    const torn = await write(log, "torn", randomBytes(20_000), { seal: false });
    const last = torn.extents.at(-1)!;
    const fd = openSync(last.segment.path, "r+");
    writeSync(fd, randomBytes(16), 0, 16, last.offset + 100);
    closeSync(fd);
    await torn.seal({ studyInstanceUid: "study-of-torn" });
    const found = await replayed(dir);
    expect([...found.keys()]).toEqual(["kept"]);
    expect(found.get("kept")!.equals(kept)).toBe(true);
  });

  it("group commit: instances sealed while a flush runs share the next one", async () => {
    const { log } = await open();
    let flushes = 0;
    const flush = (log as unknown as { flush: () => Promise<void> }).flush.bind(log);
    (log as unknown as { flush: () => Promise<void> }).flush = () => {
      flushes++;
      return flush();
    };
    const first = write(log, "first", randomBytes(1000));
    // Sealed while the first flush runs (all on this tick): one more flush answers all eight.
    await Promise.all([first, ...Array.from({ length: 8 }, (_, i) => write(log, `n${i}`, randomBytes(1000)))]);
    expect(flushes).toBe(2);
  });

  it("reuses a segment once its instances are released, oldest first, under a new generation (its old records never replay)", async () => {
    const { log, dir } = await open();
    const released: LoggedInstance[] = [];
    for (let i = 0; i < 40; i++) released.push(await write(log, `r${i}`, randomBytes(8000)));
    for (const r of released) r.release();
    await new Promise((r) => setTimeout(r, 200)); // segments are renewed on the thread pool
    const files = readdirSync(dir).length;
    for (let i = 0; i < 40; i++) (await write(log, `s${i}`, randomBytes(8000))).release();
    await new Promise((r) => setTimeout(r, 200));
    // 640 KB written through 64 KiB segments, in about as many files as half of it took.
    expect(readdirSync(dir).length).toBeLessThanOrEqual(files + 2);
    const found = await replayed(dir);
    // Released instances may still lie in segments not yet reused; the first ones' segments were.
    expect(found.has("r0")).toBe(false);
    expect(found.has("s39")).toBe(true);
  });

  it("a log opened again starts empty: what was there was replayed before (SegmentLog.open renews every segment)", async () => {
    const { dir } = await open();
    await write(log!, "before", randomBytes(5000));
    await log!.close();
    expect((await replayed(dir)).has("before")).toBe(true);
    log = await SegmentLog.open({ dir, segmentBytes: SEGMENT });
    expect((await replayed(dir)).size).toBe(0);
    await write(log, "after", randomBytes(5000));
    expect([...(await replayed(dir)).keys()]).toEqual(["after"]);
  });
});
