// A failing test must fail `npm test`. The embedded Postgres's exit hook (async-exit-hook) called
// process.exit(0) on beforeExit, so vitest's failures exited 0 and CI could not see them.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));

it("a run with a failing test exits non-zero, with the embedded Postgres loaded", () => {
  const run = spawnSync(
    process.execPath,
    [
      `${root}/node_modules/vitest/vitest.mjs`,
      "run",
      "--config",
      "broker/test/fixtures/exit-code.vitest.config.ts",
    ],
    {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, PGMESH_TEST_DATABASE_URL: "", CI: "true" },
      timeout: 120_000,
    },
  );
  const output = `${run.stdout}${run.stderr}`;
  expect(output).toContain("1 failed");
  expect(run.status).toBe(1);
}, 150_000);
