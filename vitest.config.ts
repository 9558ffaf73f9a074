import { defaultServerConditions, defineConfig } from "vite";
import { isTypeFetchConnectionLoss } from "./broker/test/support/unhandled-errors.ts";

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
    // The fault suite and the image recipe have their own commands (npm run test:faults and
    // test:image, vitest.faults.config.ts and vitest.image.config.ts).
    exclude: ["**/node_modules/**", "broker/test/faults/**", "deploy/image-recipe.test.ts"],
    globalSetup: ["broker/test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // postgres.js's array-type fetch losing its connection when a test cuts the database, and only
    // that (broker/test/support/unhandled-errors.ts).
    onUnhandledError: (error) => !isTypeFetchConnectionLoss(error),
    // Each file gets its own database; two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
