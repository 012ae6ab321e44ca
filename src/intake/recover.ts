import type { Logger } from "pino";
import { recoverSpooledInstances, type RecoveryRecords } from "../dicom-listener/spool.ts";

/**
 * At start, before the listener opens: the instances the spool holds (durable before their
 * Success) that the store lost are recorded again. The spool owns its layout and how an instance
 * is read back from it (recoverSpooledInstances); the store is reached only through RecoveryRecords.
 */
export function recoverSpool(store: RecoveryRecords, spoolDir: string, logger: Logger): number {
  return recoverSpooledInstances(store, spoolDir, logger);
}
