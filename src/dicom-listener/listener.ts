/**
 * The C-ECHO / C-STORE SCP, wired: connections speak the protocol (scp.ts), association requests are
 * decided by the association rules (association-rules.ts) against the associations open now, and
 * each accepted association stores through the spool (spool.ts) into the intake store.
 */
import { readFileSync } from "node:fs";
import { createServer as createTcpServer, type Server as NetServer, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { Logger } from "pino";
import type { ListenerConfig } from "../config/service.ts";
import type { IntakeStore } from "../store/roles.ts";
import type { InstanceOutcome } from "../store/types.ts";
import { decideAssociation, type OpenAssociations } from "./association-rules.ts";
import { DicomConnection, type AssociationAcceptor, type AssociationSession, type StoreRequest, type StoreSink } from "./scp.ts";
import { Spool } from "./spool.ts";
import { STORE_STATUS, type StoreResult } from "./store-response.ts";

export interface StoredInstance {
  sopInstanceUid: string;
  studyInstanceUid: string;
  path: string;
  outcome: InstanceOutcome;
  callingAeTitle: string;
}

export interface ListenerOptions {
  config: ListenerConfig;
  store: IntakeStore;
  /** Where received instances are written (spool/<study>/<sop>.dcm). */
  spoolDir: string;
  /** Where unreadable instances are kept, with their reason recorded in the store. */
  quarantineDir: string;
  logger: Logger;
  /** After an instance is on disk and recorded, before the success answer goes out. */
  onStored?: (inst: StoredInstance) => void;
  /** An association ended; `studies` are the studies it delivered instances of (with the count it delivered). */
  onAssociationEnded?: (studies: Map<string, number>) => void;
  /**
   * Default true. false skips the fdatasync/fsync calls — ONLY for bench/ingest's diagnostic row
   * (how much of the time is the disk flush); success is then no longer a durability promise.
   */
  syncToDisk?: boolean;
}

export interface DicomListener {
  readonly port: number;
  readonly host: string;
  /** Open associations right now. */
  activeAssociations(): number;
  close(): Promise<void>;
}

/** Open associations, counted per calling AE title and per peer address (one per accepted association). */
class AssociationSlots {
  private total = 0;
  private readonly byAe = new Map<string, number>();
  private readonly byHost = new Map<string, number>();

  open(callingAe: string, host: string): OpenAssociations {
    return { total: this.total, fromCallingAe: this.byAe.get(callingAe) ?? 0, fromHost: this.byHost.get(host) ?? 0 };
  }

  /** Takes a slot; the returned function gives it back (once, however often it is called). */
  take(callingAe: string, host: string): () => void {
    this.total++;
    bump(this.byAe, callingAe, 1);
    bump(this.byHost, host, 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.total--;
      bump(this.byAe, callingAe, -1);
      bump(this.byHost, host, -1);
    };
  }

  count(): number {
    return this.total;
  }
}
function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}

export async function startListener(opts: ListenerOptions): Promise<DicomListener> {
  const { config, store, logger } = opts;
  const spool = new Spool({ spoolDir: opts.spoolDir, quarantineDir: opts.quarantineDir, quarantineLog: store, logger, syncToDisk: opts.syncToDisk, budget: config.parseBudget });
  await spool.ready();
  const slots = new AssociationSlots();
  const sockets = new Set<Socket>();
  /** Instances between their last fragment and their answer: close() lets them finish before the store goes. */
  const finishing = new Set<Promise<unknown>>();

  /** One C-STORE's data set into the spool; once durable, recorded; the answer comes from both. */
  function storeSink(request: StoreRequest, delivered: Map<string, number>): StoreSink {
    const file = spool.receive(request);
    return {
      append: (fragment) => file.append(fragment),
      abandon: () => void file.discard().catch(() => undefined),
      finish: () => {
        const done = finishInstance(file, delivered);
        finishing.add(done);
        void done.finally(() => finishing.delete(done)).catch(() => undefined);
        return done;
      },
    };
  }

  async function finishInstance(file: ReturnType<Spool["receive"]>, delivered: Map<string, number>): Promise<StoreResult> {
    const result = await spool.finish(file);
    const inst = result.instance;
    if (!inst) return result;
    let outcome: InstanceOutcome;
    try {
      outcome = await store.addInstance(inst);
    } catch (err) {
      // Durable but not recorded: the sender gets a failure and resends; recovery records it at the latest at the next start.
      logger.error({ err: (err as Error).message, sop: inst.sopInstanceUid, study: inst.studyInstanceUid }, "cannot record received instance");
      return { status: STORE_STATUS.outOfResources, comment: `cannot record instance: ${(err as Error).message}`.slice(0, 64) };
    }
    delivered.set(inst.studyInstanceUid, (delivered.get(inst.studyInstanceUid) ?? 0) + 1);
    opts.onStored?.({ sopInstanceUid: inst.sopInstanceUid, studyInstanceUid: inst.studyInstanceUid, path: inst.path, outcome, callingAeTitle: inst.callingAeTitle });
    return { status: STORE_STATUS.success };
  }

  const acceptor: AssociationAcceptor = {
    associate(rq, peerHost) {
      const calling = rq.callingAeTitle.trim();
      const decision = decideAssociation(config, rq, peerHost, slots.open(calling, peerHost));
      if (!decision.accept) return { decision };
      const giveBack = slots.take(calling, peerHost);
      const delivered = new Map<string, number>();
      const session: AssociationSession = {
        beginStore: (request) => storeSink(request, delivered),
        end: () => {
          giveBack();
          if (delivered.size) opts.onAssociationEnded?.(new Map(delivered));
          delivered.clear();
        },
      };
      return { decision, session };
    },
  };

  const onConnection = (socket: Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", (err) => logger.warn({ err: err.message, peer: socket.remoteAddress }, "DICOM network error"));
    new DicomConnection(socket, {
      acceptor,
      logger,
      artimMs: config.artimTimeoutSeconds * 1000,
      idleMs: config.associationTimeoutSeconds * 1000,
      maxPduLength: config.maxPduLength,
    });
  };
  let server: NetServer;
  if (config.tls) {
    server = createTlsServer(
      {
        cert: readFileSync(config.tls.cert),
        key: readFileSync(config.tls.key),
        ca: config.tls.ca ? readFileSync(config.tls.ca) : undefined,
        requestCert: config.tls.requireClientCertificate,
        rejectUnauthorized: config.tls.requireClientCertificate,
        minVersion: "TLSv1.2",
      },
      onConnection,
    );
  } else {
    server = createTcpServer({ noDelay: true }, onConnection);
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.bindAddress, () => {
      server.off("error", reject);
      server.on("error", (err) => logger.error({ err: err.message }, "DICOM listener error"));
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : config.port;
      resolve({
        port,
        host: config.bindAddress,
        activeAssociations: () => slots.count(),
        close: async () => {
          await new Promise<void>((res) => {
            for (const s of sockets) s.destroy();
            server.close(() => res());
          });
          // Their senders get no answer any more (and resend), but what is on disk is also recorded.
          await Promise.allSettled([...finishing]);
          await spool.close();
        },
      });
    });
  });
}
