// The bench's own tests (its accounting, load shapes, options and report): pure logic, no servers.
// `npm run test:bench`; the smoke run in .ci/run exercises the rest against real systems.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["bench/test/**/*.test.ts"], testTimeout: 10_000 },
});
