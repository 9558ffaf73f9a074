// A fetch must stay cheap whatever the planner's statistics say. A new subscription's queue is
// unknown to statistics taken before it had jobs (by our upkeep or the server's autovacuum), and
// pg-boss's plain fetch then joined its claimed ids to the queue's rows by re-reading the whole
// queue per row: 2.2 s for a fetch of 500 out of 20,000, which stalled deliveries for seconds in
// the benchmark. The broker fetches with the statement form that takes the ids as one array.
import { PgBoss } from "pg-boss";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FETCH_OPTIONS } from "../../src/store/queue.ts";
import { useTestBroker } from "../support/broker.ts";

const t = useTestBroker({ PGMESH_UPKEEP_MS: "3600000" });
let sql: postgres.Sql;
let boss: PgBoss;
beforeAll(async () => {
  sql = postgres(t.db.url, { max: 2, onnotice: () => {} });
  boss = new PgBoss({ connectionString: t.db.url, schema: "pgboss", supervise: false, schedule: false });
  await boss.start();
});
afterAll(async () => {
  await boss?.stop({ graceful: false, close: true });
  await sql?.end();
});

type PlanNode = { "Rows Removed by Join Filter"?: number; "Actual Rows"?: number; Plans?: PlanNode[] };
const removedByJoinFilters = (node: PlanNode): number =>
  (node["Rows Removed by Join Filter"] ?? 0) +
  (node.Plans ?? []).reduce((n, p) => n + removedByJoinFilters(p), 0);

describe("fetching a subscription's deliveries", () => {
  it("claims 500 of a new subscription's 20,000 without re-reading the queue per claimed job, on stale statistics", async () => {
    const { client } = t.mesh;
    await client.createTopic("plan.old");
    await client.createSubscription("plan.old.sub", "plan.old");
    await client.createTopic("plan.new");
    await client.createSubscription("plan.new.sub", "plan.new");
    const queueOf = async (name: string) =>
      (await sql`SELECT queue FROM pgmesh.subscriptions WHERE name = ${name}`)[0]?.queue as string;
    const [oldQueue, newQueue] = [await queueOf("plan.old.sub"), await queueOf("plan.new.sub")];
    // Statistics taken while only the old subscription had jobs; then the new one gets a burst.
    await boss.insert(
      oldQueue,
      Array.from({ length: 2_000 }, (_, i) => ({ data: { e: String(i) } })),
    );
    await sql`ANALYZE pgboss.job_common`;
    for (let i = 0; i < 4; i++) {
      await boss.insert(
        newQueue,
        Array.from({ length: 5_000 }, (_, j) => ({ data: { e: String(i * 5_000 + j) } })),
      );
    }

    let plan: PlanNode | undefined;
    await boss.fetch(newQueue, {
      ...FETCH_OPTIONS,
      batchSize: 500,
      db: {
        executeSql: async (text, values) => {
          const [row] = await sql.unsafe(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, (values ?? []) as never[]);
          plan = ((row?.["QUERY PLAN"] ?? []) as { Plan: PlanNode }[])[0]?.Plan;
          return { rows: [] };
        },
      },
    });
    expect(plan?.["Actual Rows"]).toBe(500);
    // The plain fetch's plan removed 9,999,500 rows in its join filter (20,000 x 500).
    expect(removedByJoinFilters(plan as PlanNode)).toBeLessThan(1_000);
  });
});
