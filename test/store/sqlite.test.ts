import { join } from "node:path";
import { openSqliteStore } from "../../src/store/index.ts";
import { tempDir } from "../helpers/tmp.ts";
import { storeContract } from "./contract.ts";

storeContract("SQLite", () => ({
  crossNodeChanges: false,
  async fresh() {
    const tmp = tempDir("cxr-store-");
    const path = join(tmp.dir, "store.sqlite");
    return { open: async (nodeId, leaseSeconds) => openSqliteStore(path, { nodeId, leaseSeconds }), cleanup: async () => tmp.cleanup() };
  },
}));
