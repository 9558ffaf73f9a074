// A pg-boss of a test's own on the test database, for queueing jobs as pg-boss itself would (and
// without pgmesh's wake-ups).
import { PgBoss } from "pg-boss";

/** Runs `work` with a pg-boss on `databaseUrl` (no supervision), stopped after. */
export async function withPgBoss(databaseUrl: string, work: (boss: PgBoss) => Promise<void>): Promise<void> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    schema: "pgboss",
    supervise: false,
    schedule: false,
  });
  await boss.start();
  try {
    await work(boss);
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
}
