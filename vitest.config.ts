import { defineConfig } from "vitest/config";

// Tests start real peers (Orthanc, dcmtk, Chromium) and run a real DenseNet121; CI has 2 cores.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
  },
});
