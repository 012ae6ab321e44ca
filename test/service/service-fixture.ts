import { afterAll, beforeAll } from "vitest";
import { join } from "node:path";
import { pino } from "pino";
import { resolveConfig, SOP_CLASS } from "../../src/config/service.ts";
import type { ImageGate } from "../../src/gate/gate.ts";
import { Classifier } from "../../src/inference/classifier.ts";
import { initModelDir } from "../../src/model/model-dir.ts";
import { startOrthanc, type OrthancHandle } from "../../src/peers/orthanc.ts";
import { freePort } from "../../src/peers/ports.ts";
import { startService, type RunningService } from "../../src/service.ts";
import { tempDir } from "../helpers/tmp.ts";

/** The SOP classes these tests' site accepts: the shared chest films are Secondary Capture wrappers of DX/CR. */
export const TEST_SITE_SOP_CLASSES = [SOP_CLASS.CR, SOP_CLASS.DX_PRESENTATION, SOP_CLASS.DX_PROCESSING, SOP_CLASS.SECONDARY_CAPTURE];

export interface ServiceFixtureOptions {
  tmpPrefix: string;
  aeTitle: string;
  /** Default TEST_SITE_SOP_CLASSES. */
  acceptedSopClasses?: string[];
  /** Orthanc knows the plugin as modality `cxr` (to route studies to it). */
  orthancRoutesToPlugin?: boolean;
  /** The worklist API's tokens; without them the service runs no API. */
  apiTokens?: string[];
  gate?: () => Promise<ImageGate>;
  /** More configuration, made once Orthanc runs (peers it names may be started here); its `intake` adds to the default. */
  configure?: (fx: ServiceFixture) => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Stopped after the service (the peers `configure` started). */
  stop?: () => Promise<void>;
}

/**
 * What the service tests share, started before their tests and stopped after: a small model, Orthanc
 * as the PACS, and `cxr`'s service in this process on a free DICOM port, exporting to Orthanc.
 */
export interface ServiceFixture {
  tmp: ReturnType<typeof tempDir>;
  orthanc: OrthancHandle;
  service: RunningService;
  /** The service's DICOM port. */
  port: number;
}

export function serviceFixture(o: ServiceFixtureOptions): ServiceFixture {
  const fx = { tmp: tempDir(o.tmpPrefix) } as ServiceFixture;
  let classifier: Classifier | undefined;
  let gate: ImageGate | undefined;
  beforeAll(async () => {
    const modelDir = join(fx.tmp.dir, "model");
    initModelDir({ inputSize: 64, seed: 1, out: modelDir });
    classifier = await Classifier.load(modelDir);
    gate = await o.gate?.();
    // Known before the service starts when Orthanc must know where to send.
    fx.port = await freePort();
    fx.orthanc = await startOrthanc({ dir: join(fx.tmp.dir, "orthanc"), ...(o.orthancRoutesToPlugin && { modalities: { cxr: [o.aeTitle, "127.0.0.1", fx.port] } }) });
    const extra = (await o.configure?.(fx)) ?? {};
    const config = resolveConfig({
      dataDir: join(fx.tmp.dir, "data"),
      model: { dir: modelDir },
      dicom: { aeTitle: o.aeTitle, port: fx.port, acceptedSopClasses: o.acceptedSopClasses ?? TEST_SITE_SOP_CLASSES },
      export: { destinations: [{ aeTitle: fx.orthanc.aet, host: "127.0.0.1", port: fx.orthanc.dicomPort }], retryInitialSeconds: 0.5 },
      ...(o.apiTokens && { api: { httpPort: 0, tokens: o.apiTokens } }),
      ...extra,
      intake: { stableAgeSeconds: 1, ...(extra.intake as Record<string, unknown> | undefined) },
    });
    fx.service = await startService(config, { logger: pino({ level: "silent" }), classifier, gate, api: !!o.apiTokens });
  });
  afterAll(async () => {
    await fx.service?.close();
    await classifier?.close();
    await gate?.close();
    await fx.orthanc?.stop();
    await o.stop?.();
    fx.tmp.cleanup();
  });
  return fx;
}
