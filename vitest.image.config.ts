// `npm run test:image`: deploy/Dockerfile followed step by step without Docker (npm ci, build, pack,
// install from the registry, then the image's CMD against the test Postgres), kept out of `npm test`
// for its length (about two minutes); CI runs both.
import { defineConfig } from "vitest/config";
import base from "./vitest.config.ts";

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ["deploy/image-recipe.test.ts"],
    exclude: ["**/node_modules/**"],
  },
});
