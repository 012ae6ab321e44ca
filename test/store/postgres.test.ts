import { afterAll, beforeAll } from "vitest";
import { openStore } from "../../src/store/index.ts";
import { postgresUnavailable, startPostgres, type PrivatePostgres } from "../helpers/postgres.ts";
import { storeContract } from "./contract.ts";

// A real PostgreSQL (Debian's server, started privately by the test helper); without it the suite
// says why and is skipped — except on CI, where a missing server is a failure.
const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === "true") throw new Error(`PostgreSQL store tests: ${unavailable}`);
if (unavailable) console.warn(`skipping the PostgreSQL store tests: ${unavailable}`);

let server: PrivatePostgres | undefined;
beforeAll(async () => {
  if (!unavailable) server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

storeContract("PostgreSQL", () => ({
  crossNodeChanges: true,
  async fresh() {
    const url = await server!.createDatabase();
    return { open: (nodeId, leaseSeconds = 60) => openStore({ kind: "postgres", url, nodeId, leaseSeconds }, { dataDir: "/nonexistent" }), cleanup: async () => undefined };
  },
}), unavailable);
