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
    globalSetup: ["broker/test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own database; two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
