import { afterAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SOP_CLASS } from "../../src/config/service.ts";
import { HeaderParser, INLINE_PARSE, ParseBudgetError } from "../../src/dicom-listener/header-parser.ts";
import { tempDir } from "../helpers/tmp.ts";
import { dataset, nestedSequences, part10File } from "./datasets.ts";

const id = { sopClassUid: SOP_CLASS.CR, sopInstanceUid: "1.2.3.1", studyInstanceUid: "1.2.3.2", seriesInstanceUid: "1.2.3.3" };
const EXPLICIT_LE = "1.2.840.10008.1.2.1";

describe("header parser (inline when measured small, else worker threads with a time budget)", () => {
  const tmp = tempDir("cxr-header-parser-");
  const parser = new HeaderParser({ timeoutMs: 1000 });
  afterAll(async () => {
    await parser.close();
    tmp.cleanup();
  });

  it("parses a header off the main thread", async () => {
    const ds = await parser.parse(part10File(dataset({ explicit: true }, id), id, EXPLICIT_LE));
    expect(ds).toMatchObject({ SOPInstanceUID: "1.2.3.1", StudyInstanceUID: "1.2.3.2", Modality: "CR" });
  });

  it("a header measured small is parsed on the calling thread, any other one only by a worker", async () => {
    const closed = new HeaderParser({ timeoutMs: 1000 });
    await closed.close();
    const bytes = part10File(dataset({ explicit: true }, id), id, EXPLICIT_LE);
    expect(await closed.parse(bytes, { elements: INLINE_PARSE.maxElements, depth: 1 })).toMatchObject({ SOPInstanceUID: "1.2.3.1" });
    await expect(closed.parse(bytes, { elements: INLINE_PARSE.maxElements + 1, depth: 1 })).rejects.toThrow(/closed/);
    await expect(closed.parse(bytes, { elements: 10, depth: INLINE_PARSE.maxNestingDepth + 1 })).rejects.toThrow(/closed/);
    await expect(closed.parse(bytes)).rejects.toThrow(/closed/);
  });

  it("a parse over its time budget is ended (worker terminated) and answered with a ParseBudgetError; the next header is parsed by a new worker", async () => {
    // Not measured beforehand (as a deflated data set cannot be): only the worker's limits stand between it and the service.
    const path = join(tmp.dir, "deep.dcm");
    writeFileSync(path, part10File(dataset({ explicit: true }, id, [nestedSequences({ explicit: true }, 30_000)]), id, EXPLICIT_LE));
    const started = Date.now();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    const err = await parser.parseFile(path).then(
      () => undefined,
      (e: Error) => e,
    );
    clearInterval(ticker);
    // dcmjs spends about 1 ms per level: the time budget ends it, and the main thread kept ticking meanwhile
    expect(err).toBeInstanceOf(ParseBudgetError);
    expect(err!.message).toMatch(/longer than 1 s/);
    expect(Date.now() - started).toBeLessThan(3000);
    // (a stalled main thread would tick not at all; timers on a loaded machine tick late, hence only half)
    expect(ticks).toBeGreaterThanOrEqual(Math.floor((Date.now() - started) / 100));
    const next = await parser.parse(part10File(dataset({ explicit: true }, id), id, EXPLICIT_LE));
    expect(next.SOPInstanceUID).toBe("1.2.3.1");
  });
});
