// A JobQueue (the pg-boss adapter) of a test's own, on the database of the file's test broker
// (which migrated it, pg-boss's schema included), with a postgres.js pool of its own.
import postgres from "postgres";
import { afterAll, beforeAll } from "vitest";
import { DEFAULT_TIMEOUTS } from "../../src/store/database.ts";
import { JobQueue } from "../../src/store/queue.ts";
import type { TestDatabase } from "./database.ts";

/**
 * Started before the file's tests and stopped after. `connections`: the pool's size (1 makes every
 * statement share one session, e.g. to read its pg_prepared_statements). Read `sql` and `queue`
 * inside tests and hooks.
 */
export function useJobQueue(
  broker: { readonly db: TestDatabase },
  { connections = 4 } = {},
): { readonly sql: postgres.Sql; readonly queue: JobQueue } {
  const state = {} as { sql: postgres.Sql; queue: JobQueue };
  beforeAll(async () => {
    state.sql = postgres(broker.db.url, { max: connections, onnotice: () => {} });
    state.queue = await JobQueue.start(state.sql, {
      connectionString: broker.db.url,
      monitorIntervalSeconds: 60,
      maintenanceIntervalSeconds: 3600,
      timeouts: DEFAULT_TIMEOUTS,
      onError: () => {},
    });
  });
  afterAll(async () => {
    await state.queue?.stop();
    await state.sql?.end();
  });
  return state;
}
