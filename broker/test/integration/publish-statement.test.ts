// The publish statement (store/queries/publish.ts) writes pg-boss's job table itself, one INSERT
// for every queue of a publish group. These tests hold it to pg-boss's own insert, column by
// column, and check the cached routing list it relies on against subscriptions that come and go.

import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { withPgBoss } from "../support/pg-boss.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const t = useTestBroker();
let sql: postgres.Sql;
beforeAll(() => {
  sql = postgres(t.db.url, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  await sql.end();
});

/** A job row as pg-boss would compare it: every column but the ones that name this one job. */
async function jobShapes(queue: string) {
  return sql`
    SELECT to_jsonb(j) - 'id' - 'data' - 'created_on' - 'start_after' - 'keep_until' - 'singleton_key'
             AS columns,
           extract(epoch FROM j.keep_until - j.start_after)::bigint AS kept_for_seconds,
           j.start_after > j.created_on + interval '1 second' AS delayed,
           j.singleton_key IS NOT NULL AS keyed,
           j.data ->> 'e' AS event
    FROM pgboss.job j WHERE j.name = ${queue}
    ORDER BY j.start_after`;
}

const queueOf = async (subscription: string) =>
  (await sql`SELECT queue FROM pgmesh.subscriptions WHERE name = ${subscription}`)[0]?.queue as string;

describe("the publish statement", () => {
  it("queues jobs that are column for column what pg-boss's own insert queues", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.contract");
    await client.createSubscription("ps.plain", "ps.contract", {
      ackDeadlineSeconds: 17,
      ackedRetentionSeconds: 3600,
    });
    await client.createSubscription("ps.ordered", "ps.contract", { ordering: true });
    const later = new Date(Date.now() + 60_000);
    await client.publish("ps.contract", [
      { id: "now", source: "s", type: "t", orderingKey: "k" },
      { id: "later", source: "s", type: "t", deliverAfter: later },
    ]);

    // The same deliveries through pg-boss's insert, on the same queues.
    await withPgBoss(t.db.url, async (boss) => {
      for (const [subscription, ordered] of [
        ["ps.plain", false],
        ["ps.ordered", true],
      ] as const) {
        const queue = await queueOf(subscription);
        const ours = await jobShapes(queue);
        expect(ours).toHaveLength(2);
        await sql`DELETE FROM pgboss.job WHERE name = ${queue}`;
        await boss.insert(queue, [
          { data: { e: "1" }, ...(ordered ? { singletonKey: "k" } : {}) },
          { data: { e: "2" }, startAfter: later, ...(ordered ? { singletonKey: "~2" } : {}) },
        ]);
        const theirs = await jobShapes(queue);
        expect(ours.map(({ event: _, ...shape }) => shape)).toEqual(
          theirs.map(({ event: _, ...shape }) => shape),
        );
      }
    });
  });

  it("leases at publish for a stream that keeps up: the job is what pg-boss's fetch leaves, and acks", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.leased");
    await client.createSubscription("ps.leased", "ps.leased", {
      ackDeadlineSeconds: 17,
      ackedRetentionSeconds: 3600,
    });
    const queue = await queueOf("ps.leased");
    const probe = await StreamProbe.open(client, "ps.leased", 100);
    // The first publish finds the dispatcher either leasing or drained; once it has delivered,
    // the queue is drained and the stream has room, so the next publish leases in its statement.
    await client.publish("ps.leased", [{ id: "first", source: "s", type: "t" }]);
    await probe.waitForDeliveries(1);
    await client.publish("ps.leased", [{ id: "second", source: "s", type: "t" }]);
    const [, second] = await probe.waitForDeliveries(2);
    expect(second?.event?.id).toBe("second");
    expect(second?.deliveryAttempt).toBe(1);
    const leasedRow = async () =>
      (
        await sql`
          SELECT to_jsonb(j) - 'id' - 'data' - 'created_on' - 'start_after' - 'keep_until' - 'started_on'
                   - 'heartbeat_on' AS columns,
                 j.started_on = j.created_on AS leased_in_its_insert,
                 j.heartbeat_on = j.started_on AS beat_at_start
          FROM pgboss.job j WHERE j.name = ${queue} AND j.data ->> 'e' = (
            SELECT seq::text FROM pgmesh.events WHERE topic = 'ps.leased' AND id = 'second')`
      )[0];
    const ours = await leasedRow();
    // Leased by the statement that inserted it (started_on is that statement's time), not fetched.
    expect(ours?.leased_in_its_insert).toBe(true);
    const [ack] = await probe.ackAndWait([second?.ackId as string]);
    expect(ack?.status).toBe(AckStatus.ACK_STATUS_ACKED);
    // A bigger batch (over 64 events for the subscription) goes through the queue: fetched.
    await client.publish(
      "ps.leased",
      Array.from({ length: 65 }, (_, i) => ({ id: `big-${i}`, source: "s", type: "t" })),
    );
    await probe.waitForDeliveries(67);
    const [big] = await sql`
      SELECT count(*) FILTER (WHERE j.started_on = j.created_on)::int AS leased_in_insert, count(*)::int AS jobs
      FROM pgboss.job j JOIN pgmesh.events e ON e.seq = (j.data ->> 'e')::bigint
      WHERE j.name = ${queue} AND e.id LIKE 'big-%'`;
    expect(big).toEqual({ leased_in_insert: 0, jobs: 65 });
    probe.cancel();

    // pg-boss's own insert and fetch on the same queue leave the same columns.
    await withPgBoss(t.db.url, async (boss) => {
      await sql`DELETE FROM pgboss.job WHERE name = ${queue}`;
      await boss.insert(queue, [{ data: { e: "1" } }]);
      await boss.fetch(queue, { batchSize: 1 });
      const [theirs] = await sql`
        SELECT to_jsonb(j) - 'id' - 'data' - 'created_on' - 'start_after' - 'keep_until' - 'started_on'
                 - 'heartbeat_on' AS columns,
               j.heartbeat_on = j.started_on AS beat_at_start
        FROM pgboss.job j WHERE j.name = ${queue}`;
      expect(ours?.columns).toEqual(theirs?.columns);
      expect(ours?.beat_at_start).toBe(theirs?.beat_at_start);
    });
  });

  it("stores a fan-out to ten subscriptions in one transaction, each subscription getting every event", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.fan");
    for (let i = 0; i < 10; i++) await client.createSubscription(`ps.fan.${i}`, "ps.fan");
    await client.publish(
      "ps.fan",
      Array.from({ length: 50 }, (_, i) => ({ id: `f-${i}`, source: "s", type: "t" })),
    );
    const [row] = await sql`
      SELECT (SELECT count(*) FROM pgboss.job j JOIN pgmesh.subscriptions s ON s.queue = j.name
               WHERE s.topic = 'ps.fan')::int AS jobs,
             (SELECT count(DISTINCT xmin::text) FROM (
                SELECT xmin FROM pgmesh.events WHERE topic = 'ps.fan'
                UNION ALL
                SELECT j.xmin FROM pgboss.job j JOIN pgmesh.subscriptions s ON s.queue = j.name
                 WHERE s.topic = 'ps.fan') x)::int AS transactions`;
    expect(row).toEqual({ jobs: 500, transactions: 1 });
  });

  it("names a subscription's queue with 16 random hex digits, whatever its name: every job carries it", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.qname");
    const long = `ps.qname.${"x".repeat(91)}`;
    await client.createSubscription(long, "ps.qname");
    await client.createSubscription("ps.q", "ps.qname");
    const [a, b] = [await queueOf(long), await queueOf("ps.q")];
    expect(a).toMatch(/^s\/[0-9a-f]{16}$/);
    expect(b).toMatch(/^s\/[0-9a-f]{16}$/);
    expect(a).not.toBe(b);
    // Deleted and created again: a queue of its own, so none of the old deliveries.
    await client.deleteSubscription("ps.q");
    await client.createSubscription("ps.q", "ps.qname");
    expect(await queueOf("ps.q")).not.toBe(b);
  });

  it("stores a payload's standard type URL as NULL and gives every type URL back as it was sent", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.urls");
    await client.createSubscription("ps.urls.all", "ps.urls");
    const value = Buffer.from([8, 1]);
    const sent = [
      { id: "standard", type: "shop.v1.Placed", url: "type.googleapis.com/shop.v1.Placed" },
      { id: "implied-type", type: "", url: "type.googleapis.com/shop.v1.Shipped" },
      { id: "other-host", type: "shop.v1.Placed", url: "example.com/types/shop.v1.Placed" },
      { id: "other-type", type: "shop.placed", url: "type.googleapis.com/shop.v1.Placed" },
    ];
    await client.publish("ps.urls", [
      ...sent.map(({ id, type, url }) => ({ id, source: "s", type, data: { typeUrl: url, value } })),
      { id: "no-data", source: "s", type: "shop.v1.Ping" },
    ]);
    const stored = await sql`
      SELECT id, data_type_url FROM pgmesh.events WHERE topic = 'ps.urls' ORDER BY seq`;
    expect(stored).toEqual([
      { id: "standard", data_type_url: null },
      { id: "implied-type", data_type_url: null },
      { id: "other-host", data_type_url: "example.com/types/shop.v1.Placed" },
      { id: "other-type", data_type_url: "type.googleapis.com/shop.v1.Placed" },
      { id: "no-data", data_type_url: "" },
    ]);
    const probe = await StreamProbe.open(client, "ps.urls.all");
    const got = await probe.waitForDeliveries(5);
    expect(got.map((d) => [d.event?.id, d.event?.data?.typeUrl ?? ""])).toEqual([
      ...sent.map(({ id, url }) => [id, url]),
      ["no-data", ""],
    ]);
    await probe.close();
  });

  it("gives a statement's jobs ids that begin with its time, so they sit together in pg-boss's key", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.ids");
    await client.createSubscription("ps.ids.plain", "ps.ids");
    await client.createSubscription("ps.ids.filtered", "ps.ids", { filter: 'attributes.keep = "yes"' });
    const before = Date.now();
    await client.publish(
      "ps.ids",
      Array.from({ length: 200 }, (_, i) => ({
        id: `i-${i}`,
        source: "s",
        type: "t",
        attributes: { keep: "yes" },
      })),
    );
    const after = Date.now();
    const rows = await sql`
      SELECT j.id::text AS id FROM pgboss.job j JOIN pgmesh.subscriptions s ON s.queue = j.name
      WHERE s.topic = 'ps.ids'`;
    expect(rows).toHaveLength(400);
    // The first 12 hex digits are the statement's milliseconds; the rest is random, and unique.
    const millis = new Set(
      rows.map((r) => Number.parseInt((r.id as string).replace("-", "").slice(0, 12), 16)),
    );
    expect(millis.size).toBe(1);
    const [ms] = [...millis];
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
    expect(new Set(rows.map((r) => (r.id as string).slice(14))).size).toBe(400);
  });
  it("routes by subscriptions created and deleted after the broker cached the topic's list", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.routes");
    await client.createSubscription("ps.routes.first", "ps.routes");
    await client.publish("ps.routes", [{ id: "one", source: "s", type: "t" }]);
    // Created after the first publish cached the list: it must get what is published from now on.
    await client.createSubscription("ps.routes.second", "ps.routes", { filter: 'attributes.kind = "x"' });
    await client.publish("ps.routes", [
      { id: "two", source: "s", type: "t", attributes: { kind: "x" } },
      { id: "three", source: "s", type: "t", attributes: { kind: "y" } },
    ]);
    const second = await StreamProbe.open(client, "ps.routes.second", 10);
    expect((await second.waitForDeliveries(1)).map((d) => d.event?.id)).toEqual(["two"]);
    second.cancel();

    // Deleted after the list was cached: publishing goes on, to the subscription that is left.
    await client.deleteSubscription("ps.routes.second");
    await client.publish("ps.routes", [{ id: "four", source: "s", type: "t" }]);
    const first = await StreamProbe.open(client, "ps.routes.first", 10);
    const ids = (await first.waitForDeliveries(4)).map((d) => d.event?.id).sort();
    expect(ids).toEqual(["four", "one", "three", "two"]);
    first.cancel();
  });
});
