import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { pino } from "pino";
import { apiConfigSchema, priorityConfigSchema } from "../../src/config/worklist.ts";
import { createMetrics } from "../../src/worklist/metrics.ts";
import { createApiServer, studyLogFields } from "../../src/worklist/server.ts";
import { MemoryStudyStore, study } from "./memory-store.ts";

const TOKEN = "log-token-0123456789abcdef";

describe("worklist logs", () => {
  it("are structured JSON and carry neither patient identifiers nor the token", async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
    const store = new MemoryStudyStore();
    store.put(study("1.9", { patientName: "Doe^Jane", patientId: "PID-4711", accessionNumber: "ACC-99", probs: { Effusion: 0.8 } }));
    const api = createApiServer({
      store,
      config: { api: apiConfigSchema.parse({ tokens: [TOKEN] }), priority: priorityConfigSchema.parse({}) },
      metrics: createMetrics({ defaultMetrics: false }),
      logger: pino({ level: "trace" }, sink),
    });
    const { url } = await api.listen(0, "127.0.0.1");
    for (const path of ["/api/studies", "/api/studies/1.9", `/api/studies?token=${TOKEN}`, "/api/studies/1.9/heatmaps/Effusion.png", "/api/nothing"]) {
      await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    }
    await api.close();
    expect(lines.length).toBeGreaterThanOrEqual(6);
    const text = lines.join("");
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(text).toContain('"path":"/api/studies/1.9"');
    for (const secret of ["Doe^Jane", "PID-4711", "ACC-99", TOKEN]) expect(text).not.toContain(secret);
  });

  it("carry a changed study's patient identifiers only when api.logPhi allows it", async () => {
    for (const logPhi of [false, true]) {
      const lines: string[] = [];
      const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
      const store = new MemoryStudyStore();
      const api = createApiServer({
        store,
        config: { api: apiConfigSchema.parse({ tokens: [TOKEN], logPhi }), priority: priorityConfigSchema.parse({}) },
        metrics: createMetrics({ defaultMetrics: false }),
        logger: pino({ level: "debug" }, sink),
      });
      store.put(study("1.9", { patientName: "Doe^Jane", patientId: "PID-4711", accessionNumber: "ACC-99", probs: { Effusion: 0.8 } }));
      await api.close();
      const pushed = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "study pushed to websocket subscribers");
      expect(pushed).toHaveLength(1);
      expect(pushed[0]).toMatchObject({ studyInstanceUid: "1.9", state: "done" });
      expect(pushed[0]!.patientId).toBe(logPhi ? "PID-4711" : undefined);
    }
  });

  it("studyLogFields adds patient identifiers only with logPhi", () => {
    const rec = study("1.9", { patientName: "Doe^Jane", patientId: "PID-4711", accessionNumber: "ACC-99" });
    expect(studyLogFields(rec, false)).toEqual({ studyInstanceUid: "1.9", state: "done" });
    expect(studyLogFields(rec, true)).toEqual({ studyInstanceUid: "1.9", state: "done", patientName: "Doe^Jane", patientId: "PID-4711", accessionNumber: "ACC-99" });
  });
});
