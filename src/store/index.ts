/** The store: records (types), the state machine, the interfaces by role, and how to open one. */
export * from "./types.ts";
export * from "./states.ts";
export type * from "./roles.ts";
export { openStore, openSqliteStore, sqliteStorePath, type OpenStoreOptions } from "./open.ts";
