import type { Logger } from "pino";
import { recoverSpooledInstances } from "../dicom-listener/spool.ts";
import type { IntakeStore } from "../store/roles.ts";

/**
 * At start, before the listener opens: the instances the spool holds (durable before their
 * Success) that the store lost are recorded again. The spool owns its layout and how an instance
 * is read back from it (recoverSpooledInstances); the store is reached only through its intake role.
 */
export function recoverSpool(store: IntakeStore, spoolDir: string, logger: Logger): Promise<number> {
  return recoverSpooledInstances(store, spoolDir, logger);
}
