import type { Logger } from "pino";
import { recoverSpooledInstances, type SpoolPlace } from "../dicom-listener/spool.ts";
import type { IntakeStore } from "../store/roles.ts";

/**
 * At start, before the listener opens: the instances the spool holds (durable before their
 * Success) that the store lost are recorded again, after the node's spool log has filed what it held. The spool owns its layout and how an instance
 * is read back from it (recoverSpooledInstances); the store is reached only through its intake role.
 */
export function recoverSpool(store: IntakeStore, where: SpoolPlace, logger: Logger): Promise<number> {
  return recoverSpooledInstances(store, where, logger);
}
