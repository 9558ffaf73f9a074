import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "broker/test/**/*.test.ts",
      "sdk/test/**/*.test.ts",
      "examples/**/*.test.ts",
      "deploy/**/*.test.ts",
    ],
    globalSetup: ["broker/test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own database; two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
