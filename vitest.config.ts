import { defaultServerConditions, defineConfig } from "vite";

// In the repository, `@pgmesh/sdk` and the bins resolve to the TypeScript sources (the
// `pgmesh-source` export condition) rather than the built dist/ that the published packages use.
const conditions = ["pgmesh-source", ...defaultServerConditions];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ["pgmesh-source"] } },
  test: {
    include: [
      "broker/test/**/*.test.ts",
      "sdk/test/**/*.test.ts",
      "examples/**/*.test.ts",
      "deploy/**/*.test.ts",
    ],
    // The fault suite has its own command (npm run test:faults, vitest.faults.config.ts).
    exclude: ["**/node_modules/**", "broker/test/faults/**"],
    globalSetup: ["broker/test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // postgres.js fetches array types on each new connection without a handler: when the test
    // cuts the database during that fetch, its rejection is unhandled (the broker logs it, see
    // run.ts). Only that one is ignored.
    onUnhandledError: (error) =>
      !(
        /CONNECT_TIMEOUT|CONNECTION_CLOSED|CONNECTION_DESTROYED|ECONNRESET|ECONNREFUSED/.test(
          String((error as { code?: unknown }).code),
        ) && /pg_catalog\.pg_type/.test(String((error as { query?: unknown }).query))
      ),
    // Each file gets its own database; two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
