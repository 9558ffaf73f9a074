// One Postgres server for the whole run: the embedded one by default, or the server named by
// PGMESH_TEST_DATABASE_URL (any database on it; tests create and drop their own databases).
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { createLogger } from "../../src/log.ts";
import { startEmbeddedPostgres } from "../../src/store/embedded-postgres.ts";
import { freePort } from "./free-port.ts";

declare module "vitest" {
  export interface ProvidedContext {
    postgresAdminUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const external = process.env.PGMESH_TEST_DATABASE_URL;
  if (external) {
    project.provide("postgresAdminUrl", external);
    return;
  }
  const dataDir = await mkdtemp(join(tmpdir(), "pgmesh-test-"));
  // mkdtemp makes it 0700; as root, the embedded Postgres runs as `postgres` and must reach it.
  await chmod(dataDir, 0o755);
  const pg = await startEmbeddedPostgres({ dataDir, port: await freePort(), log: createLogger("warn") });
  project.provide("postgresAdminUrl", pg.url);
  return async () => {
    await pg.stop();
    await rm(dataDir, { recursive: true, force: true });
    if (pg.dataDir !== join(dataDir, "postgres")) await rm(pg.dataDir, { recursive: true, force: true });
  };
}
