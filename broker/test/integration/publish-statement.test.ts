// The publish statement (store/queries/publish.ts) stores events and writes no delivery; a lease
// from a subscription's cursor (store/queries/cursors.ts) writes pg-boss's job table itself. These
// tests hold those jobs to pg-boss's own insert and fetch, column by column, and check that
// subscriptions that come and go get exactly what is published while they exist.

import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { withPgBoss } from "../support/pg-boss.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";

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

describe("publish and the lease from the cursor", () => {
  it("queues delayed and ordered jobs that are column for column what pg-boss's own insert queues", async () => {
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
    // A stream on each makes its dispatcher lease from the cursor: the plain one leases "now" and
    // schedules "later"; the ordered one queues both behind their keys and fetches "now".
    const plain = await StreamProbe.open(client, "ps.plain", 10);
    const ordered = await StreamProbe.open(client, "ps.ordered", 10);
    await plain.waitForDeliveries(1);
    await ordered.waitForDeliveries(1);
    plain.cancel();
    ordered.cancel();
    const queue = await queueOf("ps.plain");
    await until(
      async () =>
        (await sql`SELECT 1 FROM pgboss.job WHERE name = ${queue} AND state = 'active'`).length === 0,
      "the cancelled stream's lease to be put back",
    );
    const [{ seq: laterSeq } = { seq: "" }] =
      await sql`SELECT seq::text FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('ps.contract') AND id = 'later'`;

    // The delayed job (both subscriptions) through pg-boss's insert, on the same queues.
    await withPgBoss(t.db.url, async (boss) => {
      for (const [subscription, isOrdered] of [
        ["ps.plain", false],
        ["ps.ordered", true],
      ] as const) {
        const q = await queueOf(subscription);
        const ours = (await jobShapes(q)).filter((j) => j.event === laterSeq);
        expect(ours).toHaveLength(1);
        await sql`DELETE FROM pgboss.job WHERE name = ${q}`;
        await boss.insert(q, [
          { data: { e: "2" }, startAfter: later, ...(isOrdered ? { singletonKey: "~2" } : {}) },
        ]);
        const theirs = await jobShapes(q);
        expect(ours.map(({ event: _, ...shape }) => shape)).toEqual(
          theirs.map(({ event: _, ...shape }) => shape),
        );
      }
    });
  });

  it("leases from the cursor in its own insert: the job is what pg-boss's fetch leaves, and acks", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.leased");
    await client.createSubscription("ps.leased", "ps.leased", {
      ackDeadlineSeconds: 17,
      ackedRetentionSeconds: 3600,
    });
    const queue = await queueOf("ps.leased");
    const probe = await StreamProbe.open(client, "ps.leased", 100);
    await client.publish("ps.leased", [{ id: "first", source: "s", type: "t" }]);
    const [first] = await probe.waitForDeliveries(1);
    expect(first?.deliveryAttempt).toBe(1);
    const [ours] = await sql`
      SELECT to_jsonb(j) - 'id' - 'data' - 'created_on' - 'start_after' - 'keep_until' - 'started_on'
               - 'heartbeat_on' AS columns,
             j.started_on = j.created_on AS leased_in_its_insert,
             j.heartbeat_on = j.started_on AS beat_at_start
      FROM pgboss.job j WHERE j.name = ${queue}`;
    // Leased by the statement that inserted it (started_on is that statement's time), not fetched.
    expect(ours?.leased_in_its_insert).toBe(true);
    const [ack] = await probe.ackAndWait([first?.ackId as string]);
    expect(ack?.status).toBe(AckStatus.ACK_STATUS_ACKED);
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

  it("stores a publish to a topic of ten subscriptions once, writing no delivery; each subscription gets every event", async () => {
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
             (SELECT count(*) FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('ps.fan'))::int AS events`;
    expect(row).toEqual({ jobs: 0, events: 50 });
    for (const i of [0, 9]) {
      const probe = await StreamProbe.open(client, `ps.fan.${i}`, 100);
      expect((await probe.waitForDeliveries(50)).map((d) => d.event?.id)).toEqual(
        Array.from({ length: 50 }, (_, n) => `f-${n}`),
      );
      probe.cancel();
    }
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
      SELECT id, data_type_url FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('ps.urls') ORDER BY seq`;
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

  it("gives a lease's jobs ids that begin with its time, so they sit together in pg-boss's key", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.ids");
    // Keeping acked deliveries makes a lease a job per event (otherwise it is one batch row).
    await client.createSubscription("ps.ids.plain", "ps.ids", { ackedRetentionSeconds: 60 });
    await client.publish(
      "ps.ids",
      Array.from({ length: 200 }, (_, i) => ({ id: `i-${i}`, source: "s", type: "t" })),
    );
    const before = Date.now();
    const probe = await StreamProbe.open(client, "ps.ids.plain", 500);
    await probe.waitForDeliveries(200);
    const after = Date.now();
    const rows = await sql`
      SELECT j.id::text AS id FROM pgboss.job j JOIN pgmesh.subscriptions s ON s.queue = j.name
      WHERE s.topic = 'ps.ids'`;
    probe.cancel();
    expect(rows).toHaveLength(200);
    // The first 12 hex digits are the statement's milliseconds; the rest is random, and unique.
    const millis = new Set(
      rows.map((r) => Number.parseInt((r.id as string).replace("-", "").slice(0, 12), 16)),
    );
    expect(millis.size).toBe(1);
    const [ms] = [...millis];
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
    expect(new Set(rows.map((r) => (r.id as string).slice(14))).size).toBe(200);
  });
  it("delivers to subscriptions created and deleted between publishes what was published while they existed", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.routes");
    await client.createSubscription("ps.routes.first", "ps.routes");
    await client.publish("ps.routes", [{ id: "one", source: "s", type: "t" }]);
    // Created after the first publish: it gets what is published from now on (its start is "now").
    await client.createSubscription("ps.routes.second", "ps.routes", { filter: 'attributes.kind = "x"' });
    await client.publish("ps.routes", [
      { id: "two", source: "s", type: "t", attributes: { kind: "x" } },
      { id: "three", source: "s", type: "t", attributes: { kind: "y" } },
    ]);
    const second = await StreamProbe.open(client, "ps.routes.second", 10);
    expect((await second.waitForDeliveries(1)).map((d) => d.event?.id)).toEqual(["two"]);
    second.cancel();

    // Deleted: publishing goes on, to the subscription that is left.
    await client.deleteSubscription("ps.routes.second");
    await client.publish("ps.routes", [{ id: "four", source: "s", type: "t" }]);
    const first = await StreamProbe.open(client, "ps.routes.first", 10);
    const ids = (await first.waitForDeliveries(4)).map((d) => d.event?.id).sort();
    expect(ids).toEqual(["four", "one", "three", "two"]);
    first.cancel();
  });
  it("stores an event's topic as its id and no attributes as NULL, and reads both back as sent", async () => {
    const { client } = t.mesh;
    await client.createTopic("ps.compact");
    await client.createSubscription("ps.compact.sub", "ps.compact");
    await client.publish("ps.compact", [
      { id: "bare", source: "s", type: "t" },
      { id: "tagged", source: "s", type: "t", attributes: { kind: "x" } },
    ]);
    const rows = await sql`
      SELECT e.id, e.attributes, e.topic_id = t.id AS own_topic
      FROM pgmesh.events e JOIN pgmesh.topics t ON t.name = 'ps.compact'
      WHERE e.topic_id = pgmesh.topic_id('ps.compact') ORDER BY e.seq`;
    expect(rows.map((r) => [r.id, r.attributes, r.own_topic])).toEqual([
      ["bare", null, true],
      ["tagged", { kind: "x" }, true],
    ]);
    const probe = await StreamProbe.open(client, "ps.compact.sub", 10);
    const delivered = await probe.waitForDeliveries(2);
    expect(delivered.map((d) => [d.event?.id, d.event?.topic, d.event?.attributes])).toEqual([
      ["bare", "ps.compact", {}],
      ["tagged", "ps.compact", { kind: "x" }],
    ]);
    probe.cancel();
  });
});
