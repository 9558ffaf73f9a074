// `npm run test:faults`: the fault suite (private Postgres clusters stopped, crashed and cut, brokers
// killed), kept out of `npm test` for its length; CI runs both.
import { defineConfig } from "vitest/config";
import base from "./vitest.config.ts";

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ["broker/test/faults/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    // Each scenario owns its Postgres cluster: the shared test server is not needed.
    globalSetup: [],
    maxWorkers: 1,
  },
});
