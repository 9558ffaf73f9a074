// Bounded tables: what an ack, a topic's retention and the idempotency window leave behind.
import { status } from "@grpc/grpc-js";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { rejection } from "../support/rejection.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";
import { heldUpkeepPass, testUpkeep } from "../support/upkeep-pass.ts";

// The tests run upkeep passes themselves; the broker's own would race them for the lock.
const t = useTestBroker({ PGMESH_UPKEEP_MS: "3600000" });
let sql: postgres.Sql;
beforeAll(() => {
  sql = postgres(t.db.url, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
});

const jobStates = async (subscription: string) => {
  const rows = await sql`SELECT j.state, count(*)::int AS n FROM pgboss.job j
    JOIN pgmesh.subscriptions s ON s.queue = j.name WHERE s.name = ${subscription} GROUP BY j.state`;
  return Object.fromEntries(rows.map((r) => [r.state as string, r.n as number]));
};

async function ackAll(subscription: string, count: number) {
  const probe = await StreamProbe.open(t.mesh.client, subscription);
  const deliveries = await probe.waitForDeliveries(count);
  const results = await probe.ackAndWait(deliveries.map((d) => d.ackId));
  probe.cancel();
  return results.map((r) => r.status);
}

describe("topic retention", () => {
  it("defaults to 7 days, is set at creation, changed later, and checked", async () => {
    const { client } = t.mesh;
    expect((await client.createTopic("ret.default")).retention).toEqual({ seconds: 604_800, nanos: 0 });
    expect((await client.createTopic("ret.short", { retentionSeconds: 120 })).retention?.seconds).toBe(120);
    expect((await client.updateTopic("ret.short", { retentionSeconds: 3600 })).retention?.seconds).toBe(3600);
    expect((await client.getTopic("ret.short")).retention?.seconds).toBe(3600);
    const tooShort = await rejection(client.createTopic("ret.bad", { retentionSeconds: 30 }));
    expect(tooShort).toEqual({
      code: status.INVALID_ARGUMENT,
      details: "retention must be 60s..31622400s (366 days) in whole seconds, got 30s",
    });
    const missing = await rejection(client.updateTopic("ret.none", { retentionSeconds: 3600 }));
    expect(missing).toEqual({ code: status.NOT_FOUND, details: "topic ret.none does not exist" });
  });
});

describe("acked deliveries", () => {
  it("are gone at the ack when the subscription keeps none, and kept when it keeps them", async () => {
    const { client } = t.mesh;
    await client.createTopic("ret.acks");
    await client.createSubscription("ret.acks.none", "ret.acks", { ackedRetentionSeconds: 0 });
    await client.createSubscription("ret.acks.kept", "ret.acks", { ackedRetentionSeconds: 3600 });
    await client.publish(
      "ret.acks",
      Array.from({ length: 10 }, (_, i) => ({ id: `e-${i}`, source: "test", type: "t.v1.E" })),
    );
    // Nothing is queued at publish: the backlog is the events after the subscription's cursor.
    expect(await jobStates("ret.acks.none")).toEqual({});
    expect(new Set(await ackAll("ret.acks.none", 10))).toEqual(new Set([AckStatus.ACK_STATUS_ACKED]));
    expect(new Set(await ackAll("ret.acks.kept", 10))).toEqual(new Set([AckStatus.ACK_STATUS_ACKED]));
    expect(await jobStates("ret.acks.none")).toEqual({});
    expect(await jobStates("ret.acks.kept")).toEqual({ completed: 10 });
  });
});

const upkeep = () => testUpkeep(sql);
/** Runs upkeep passes until one has analyzed (or vacuumed) `table`: the statistics collector learns of changes late. */
async function untilUpkeep(did: "analyzed" | "vacuumed", table: string): Promise<void> {
  const done: string[] = [];
  await until(
    async () => {
      done.push(...(await upkeep().runOnce())[did]);
      return done.includes(table);
    },
    `${did === "analyzed" ? "an ANALYZE" : "a VACUUM"} of ${table}`,
    20_000,
  );
}
const count = async (table: string) =>
  Number((await sql.unsafe(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n);
const publishMany = async (topic: string, total: number, prefix: string) => {
  for (let i = 0; i < total; i += 1000) {
    await t.mesh.client.publish(
      topic,
      Array.from({ length: Math.min(1000, total - i) }, (_, j) => ({
        id: `${prefix}-${i + j}`,
        source: "test",
        type: "t.v1.E",
      })),
    );
  }
};

describe("table upkeep", () => {
  it("analyzes the job table once a subscription's backlog grew, whatever autovacuum does", async () => {
    const { client } = t.mesh;
    await client.createTopic("ret.stats");
    // Keeping acked deliveries makes its leases jobs (not batches), so the job table grows.
    await client.createSubscription("ret.stats.sub", "ret.stats", { ackedRetentionSeconds: 60 });
    const [{ tbl }] = (await sql`SELECT 'pgboss.' || q.table_name AS tbl FROM pgboss.queue q
      JOIN pgmesh.subscriptions s ON s.queue = q.name WHERE s.name = 'ret.stats.sub'`) as unknown as [
      { tbl: string },
    ];
    await publishMany("ret.stats", 3_000, "s");
    // Leased by a stream that does not ack: 3,000 jobs in flight.
    const probe = await StreamProbe.open(client, "ret.stats.sub", 3_000);
    await probe.waitForDeliveries(3_000, 30_000);
    await untilUpkeep("analyzed", tbl);
    probe.cancel();
    // The statistics now count the backlog (the shared job table also holds the other tests' jobs).
    const [row] = await sql`SELECT reltuples::int AS n FROM pg_class WHERE oid = ${tbl}::regclass`;
    const [live] = await sql.unsafe(`SELECT count(*)::int AS n FROM ${tbl}`);
    expect(row?.n).toBe(live?.n);
    expect(row?.n).toBeGreaterThanOrEqual(3_000);
  });

  it("vacuums the job table without truncating it: a truncation locks out every fetch, publish and ack", async () => {
    // VACUUM gives a table's empty trailing pages back by taking ACCESS EXCLUSIVE on it; on a
    // queue, whose acked rows are deleted from the end, that stalled every delivery for seconds
    // in the benchmark while the pass ran.
    const { client } = t.mesh;
    await client.createTopic("ret.vacuum");
    // Keeping acked deliveries makes its leases jobs (not batches), so the job table grows.
    await client.createSubscription("ret.vacuum.sub", "ret.vacuum", { ackedRetentionSeconds: 60 });
    const [{ tbl, queue }] = (await sql`SELECT 'pgboss.' || q.table_name AS tbl, q.name AS queue
      FROM pgboss.queue q JOIN pgmesh.subscriptions s ON s.queue = q.name
      WHERE s.name = 'ret.vacuum.sub'`) as unknown as [{ tbl: string; queue: string }];
    // The server's autovacuum (on in the embedded Postgres) would clean, and truncate, the table
    // before the pass under test; here only the upkeep may.
    await sql.unsafe(`ALTER TABLE ${tbl} SET (autovacuum_enabled = false)`);
    // Enough dead rows for the upkeep's rule (5,000 + a fifth of the live ones): 8,000 jobs leased
    // by a stream that does not ack.
    await publishMany("ret.vacuum", 8_000, "v");
    const probe = await StreamProbe.open(client, "ret.vacuum.sub", 8_000);
    await probe.waitForDeliveries(8_000, 30_000);
    probe.cancel();
    // Acked and gone: the newest rows, at the end of the table, are all dead.
    await sql`DELETE FROM pgboss.job WHERE name = ${queue}`;
    const sizeOf = async () =>
      Number((await sql`SELECT pg_relation_size(${tbl}::regclass)::bigint AS n`)[0]?.n);
    const before = await sizeOf();
    try {
      await untilUpkeep("vacuumed", tbl);
    } finally {
      await sql.unsafe(`ALTER TABLE ${tbl} RESET (autovacuum_enabled)`);
    }
    expect(await sizeOf()).toBe(before);
  });

  it("deletes audit rows past the audit retention (90 days by default) and keeps the rest", async () => {
    // The brokers of other test files share this database and delete past the default 90 days on
    // their own passes, so only what a 30-day pass deletes is this test's to count.
    const ages = [400, 91, 89, 45, 1];
    await sql`INSERT INTO pgmesh.audit_log (at, principal, credential, method, resource, result)
      SELECT now() - age * interval '1 day', 'ret-auditor', 'token 0123456789abcdef', 'CreateTopic',
             'topic ret.audit.' || age, 'OK'
      FROM unnest(${ages}::int[]) AS age`;
    const kept = async () =>
      (await sql`SELECT resource FROM pgmesh.audit_log WHERE principal = 'ret-auditor' ORDER BY at`).map(
        (r) => r.resource as string,
      );
    await heldUpkeepPass(sql, { auditRetentionDays: 90 });
    expect(await kept()).toEqual(["topic ret.audit.89", "topic ret.audit.45", "topic ret.audit.1"]);
    const month = await heldUpkeepPass(sql, { auditRetentionDays: 30 });
    expect(month.auditRowsDeleted).toBeGreaterThanOrEqual(2);
    expect(await kept()).toEqual(["topic ret.audit.1"]);
  });

  it("forgets idempotency keys past the window in one pass, however many (not 10,000 a minute)", async () => {
    // Keys are digests of (topic, source, id); the topic's events name them.
    const ofTopic =
      "digest IN (SELECT pgmesh.event_key_digest('ret.keys', source, id) FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('ret.keys'))";
    const { client } = t.mesh;
    await client.createTopic("ret.keys");
    await publishMany("ret.keys", 25_000, "k");
    expect(await count(`pgmesh.event_keys WHERE ${ofTopic}`)).toBe(25_000);
    await sql.unsafe(
      `UPDATE pgmesh.event_keys SET published_at = now() - interval '2 hours' WHERE ${ofTopic}`,
    );
    const report = await heldUpkeepPass(sql, { dedupWindowSeconds: 3_600 });
    expect(report.keysForgotten).toBeGreaterThanOrEqual(25_000);
    expect(await count(`pgmesh.event_keys WHERE ${ofTopic}`)).toBe(0);
    // Forgotten: the same id is a new event again.
    const [again] = await client.publish("ret.keys", [{ id: "k-0", source: "test", type: "t.v1.E" }]);
    expect(again?.duplicate).toBe(false);
  });

  it("deletes events past their topic's retention unless a delivery or a dead letter needs them", async () => {
    const { client } = t.mesh;
    await client.createTopic("ret.events");
    await client.createSubscription("ret.events.sub", "ret.events", { maxDeliveryAttempts: 5 });
    await client.publish(
      "ret.events",
      ["acked-1", "acked-2", "dead", "acked-3", "pending", "later"].map((id) => ({
        id,
        source: "test",
        type: "t.v1.E",
      })),
    );
    const probe = await StreamProbe.open(client, "ret.events.sub", 4);
    const first = await probe.waitForDeliveries(4);
    const byId = new Map(first.map((d) => [d.event?.id, d.ackId]));
    await probe.settleAndWait(() => probe.reject([byId.get("dead") as string], "poison"), 1);
    await probe.ackAndWait(["acked-1", "acked-2", "acked-3"].map((id) => byId.get(id) as string));
    probe.cancel();
    // "pending" and "later" were never delivered; an hour old, on a topic that keeps a minute.
    await client.updateTopic("ret.events", { retentionSeconds: 60 });
    await sql`UPDATE pgmesh.events SET published_at = now() - interval '1 hour' WHERE topic_id = pgmesh.topic_id('ret.events')`;
    // The cancelled stream's leases go back asynchronously; passes until the deletions are done.
    let deleted = 0;
    await until(async () => {
      deleted += (await upkeep().runOnce()).eventsDeleted;
      return deleted >= 3;
    }, "retention to delete the three acked events");
    expect(deleted).toBe(3);
    const left =
      await sql`SELECT id FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('ret.events') ORDER BY seq`;
    expect(left.map((r) => r.id)).toEqual(["dead", "pending", "later"]);
    // The pending events are still delivered, and the dead letter still lists its event.
    const again = await StreamProbe.open(client, "ret.events.sub", 10);
    const rest = await again.waitForDeliveries(2);
    expect(rest.map((d) => d.event?.id).sort()).toEqual(["later", "pending"]);
    again.cancel();
    const letters = await client.listDeadLetters({ subscription: "ret.events.sub" });
    expect(letters.deadLetters.map((d) => d.event?.id)).toEqual(["dead"]);
  });

  it("lets one broker of the mesh run upkeep at a time", async () => {
    // Another broker's pass in progress holds the lock.
    const other = await sql.reserve();
    try {
      await other`SELECT pg_advisory_lock(7245031002)`;
      expect((await upkeep().runOnce()).ran).toBe(false);
      await other`SELECT pg_advisory_unlock(7245031002)`;
      // Free again: a pass runs (the test broker's own upkeep may take the lock first, for a moment).
      expect((await heldUpkeepPass(sql)).ran).toBe(true);
    } finally {
      other.release();
    }
  });
});
