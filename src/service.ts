import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { pino, type DestinationStream, type Logger } from "pino";
import { secretScrubber } from "./config/secrets.ts";
import type { ServiceConfig } from "./config/service.ts";
import { startListener, type DicomListener } from "./dicom-listener/listener.ts";
import { destinationName, Exporter } from "./export/exporter.ts";
import { DriftMonitor, readDriftReference } from "./drift/monitor.ts";
import { GATE_DIR, ImageGate } from "./gate/gate.ts";
import { Classifier } from "./inference/classifier.ts";
import { recoverSpool } from "./intake/recover.ts";
import { openStore, sqliteStorePath, type Store } from "./store/index.ts";
import { Pipeline } from "./pipeline/pipeline.ts";
import { createNotifyMetrics } from "./notify/metrics.ts";
import { Notifier, notificationsFor } from "./notify/notifier.ts";
import { createMetrics, type ServiceMetrics } from "./worklist/metrics.ts";
import { createApiServer, generateApiToken, type ApiServer } from "./worklist/server.ts";

/** Files of a data directory (spool, quarantine, results, heatmaps, the SQLite store when it is used). */
export function dataPaths(dataDir: string) {
  return {
    store: sqliteStorePath(dataDir),
    spool: join(dataDir, "spool"),
    quarantine: join(dataDir, "quarantine"),
    outputs: join(dataDir, "outputs"),
    heatmaps: join(dataDir, "heatmaps"),
  };
}

/**
 * The service's logger: every line passes the configuration's secret scrubber on its way out, so a
 * library error that quotes a configured URL or header cannot leak it.
 */
export function serviceLogger(config: ServiceConfig, stream?: DestinationStream): Logger {
  const scrub = secretScrubber(config);
  const options = { level: config.logLevel, hooks: { streamWrite: scrub } };
  return stream ? pino(options, stream) : pino(options);
}

export interface RunningService {
  readonly config: ServiceConfig;
  readonly store: Store;
  readonly listener: DicomListener;
  readonly pipeline: Pipeline;
  readonly exporter: Exporter;
  readonly notifier: Notifier;
  readonly metrics: ServiceMetrics;
  /** Drift monitoring, when a reference sample is configured or lies beside the model. */
  readonly drift?: DriftMonitor;
  readonly api?: { server: ApiServer; url: string; token: string };
  close(): Promise<void>;
}

export interface StartServiceOptions {
  logger?: Logger;
  /** Serve the worklist API (default true). */
  api?: boolean;
  /** An already loaded classifier (tests share one). */
  classifier?: Classifier;
  /** An already loaded gate (tests share one); otherwise loaded when `gate.enabled`. */
  gate?: ImageGate;
}

/**
 * The DICOM service: listener → durable intake → pipeline → export, plus the worklist API.
 * Start order matters: the store and the pipeline come first (so that studies a previous process
 * left behind are resumed), the listener last, and only then is "listener ready" logged.
 */
export async function startService(config: ServiceConfig, opts: StartServiceOptions = {}): Promise<RunningService> {
  const logger = opts.logger ?? serviceLogger(config);
  const paths = dataPaths(config.dataDir);
  mkdirSync(config.dataDir, { recursive: true });
  const store = await openStore(config.store, {
    dataDir: config.dataDir,
    onListenerError: (err, study) => logger.error({ study, err: err.message }, "study change listener failed"),
    onConnectionError: (err) => logger.error({ err: err.message }, "store connection error"),
  });
  try {
    await recoverSpool(store, paths.spool, logger);
  } catch (err) {
    await store.close();
    throw new Error(`store (${config.store.kind}): ${(err as Error).message}`);
  }
  const metrics = createMetrics({ defaultMetrics: opts.api !== false });
  const ownClassifier = !opts.classifier;
  let classifier: Classifier;
  try {
    classifier = opts.classifier ?? (await Classifier.load(config.model.dir, { provider: config.model.provider, threads: config.model.threads }));
  } catch (err) {
    await store.close();
    throw new Error(`model ${config.model.dir}: ${(err as Error).message}`);
  }
  const ownGate = !opts.gate && config.gate.enabled;
  let gate: ImageGate | undefined;
  try {
    gate = opts.gate ?? (config.gate.enabled ? await ImageGate.load(config.gate.dir ?? GATE_DIR, config.gate, config.model.threads) : undefined);
  } catch (err) {
    if (ownClassifier) await classifier.close();
    await store.close();
    throw new Error(`gate ${config.gate.dir ?? GATE_DIR}: ${(err as Error).message}`);
  }
  const drift = driftMonitor(config, metrics, logger);
  const exporter = new Exporter({ store, config, logger, metrics, notifications: store });
  const notifier = new Notifier({ store, config, logger, metrics: createNotifyMetrics(metrics.registry, store), onDelivered: () => exporter.kick() });
  const pipeline = new Pipeline({
    store,
    config,
    classifier,
    gate,
    drift,
    logger,
    metrics,
    outputsDir: paths.outputs,
    heatmapsDir: paths.heatmaps,
    quarantineDir: paths.quarantine,
    destinations: config.export.destinations.map(destinationName),
    notificationsFor: (findings) => notificationsFor(findings, config),
    onDone: () => {
      exporter.kick();
      notifier.kick();
    },
  });
  await pipeline.start();
  exporter.start();
  notifier.start();

  // What started so far, stopped in reverse when a later part cannot start.
  const stopStarted = async () => {
    await pipeline.stop();
    await exporter.stop();
    await notifier.stop();
    await api?.server.close();
    if (ownClassifier) await classifier.close();
    if (ownGate) await gate?.close();
    await store.close();
  };
  let api: RunningService["api"];
  if (opts.api !== false) {
    let tokens = config.api.tokens;
    if (tokens.length === 0) {
      tokens = [generateApiToken()];
      // Not into the log (logs travel to collectors): the caller shows it to the operator (RunningService.api.token).
      logger.warn("no api.tokens configured: generated a bearer token for this run");
    }
    const apiConfig = { ...config, api: { ...config.api, tokens } };
    const server = createApiServer({
      store,
      config: apiConfig,
      metrics,
      logger,
      drift: drift && (() => drift.status()),
      model: { name: classifier.card.name, version: classifier.card.version, deviceUid: classifier.card.deviceUid, architecture: classifier.card.architecture, training: classifier.card.training },
    });
    let where;
    try {
      where = await server.listen(config.api.httpPort, config.api.bindAddress);
    } catch (err) {
      await server.close();
      await stopStarted();
      throw new Error(`worklist API on ${config.api.bindAddress}:${config.api.httpPort}: ${(err as Error).message}`);
    }
    api = { server, url: where.url, token: tokens[0]! };
  }

  let listener: DicomListener;
  try {
    listener = await startListener({
      config: config.dicom,
      store,
      spoolDir: paths.spool,
      quarantineDir: paths.quarantine,
      logger,
      onStored: () => metrics.instancesReceived.inc(),
      onAssociationEnded: (studies) => pipeline.associationEnded(studies),
    });
  } catch (err) {
    await stopStarted();
    throw new Error(`DICOM listener on ${config.dicom.bindAddress}:${config.dicom.port}: ${(err as Error).message}`);
  }
  logger.info(
    { ae: config.dicom.aeTitle, node: store.nodeId, store: store.kind, host: listener.host, port: listener.port, tls: !!config.dicom.tls, http: api?.url, destinations: exporter.destinationNames, dataDir: config.dataDir, model: classifier.card.deviceUid },
    "listener ready",
  );

  let closed = false;
  return {
    config,
    store,
    listener,
    pipeline,
    exporter,
    notifier,
    metrics,
    drift,
    api,
    async close() {
      if (closed) return;
      closed = true;
      await listener.close();
      await pipeline.stop();
      await exporter.stop();
      await notifier.stop();
      await api?.server.close();
      if (ownClassifier) await classifier.close();
      if (ownGate) await gate?.close();
      await store.close();
    },
  };
}

/** The drift monitor of the configured reference, or of <model.dir>/drift-reference.json when that exists; none otherwise. */
function driftMonitor(config: ServiceConfig, metrics: ServiceMetrics, logger: Logger): DriftMonitor | undefined {
  const path = config.drift.reference ?? join(config.model.dir, "drift-reference.json");
  if (!config.drift.reference && !existsSync(path)) {
    logger.info({ expected: path }, "drift monitoring off: no reference sample (cxr drift-reference)");
    return undefined;
  }
  return new DriftMonitor({ reference: readDriftReference(path), window: config.drift.window, days: config.drift.days, psiAlert: config.drift.psiAlert, ksAlpha: config.drift.ksAlpha, minSamples: config.drift.minSamples, logger, registry: metrics.registry });
}
