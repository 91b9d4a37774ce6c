import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One throwaway PostgreSQL cluster per run (test/helpers/global-setup.ts).
    globalSetup: ["test/helpers/global-setup.ts"],
    // Child processes (the CLI, servers) need real processes, not worker threads.
    pool: "forks",
    // 2-core machines: two test files at a time; PostgreSQL and the CLI processes use the rest.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 60_000,
    // Template databases are built on first use inside a hook.
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
