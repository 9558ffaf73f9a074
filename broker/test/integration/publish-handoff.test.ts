// The publish hand-off against a real Postgres and broker: an idle stream's subscription gets a
// publish's events leased in the publish's own transaction (its lease batch and cursor move carry
// the transaction id of the events), up to the room its streams have and short of a delayed event;
// what the hand-off did not take is leased from the cursor as before, each event once.
import { AckStatus, type Delivery } from "@pgmesh/proto/pgmesh/v1/subscriber";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";

const t = useTestBroker();
let sql: postgres.Sql;
beforeAll(() => {
  sql = postgres(t.db.url, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const publish = (topic: string, ids: string[], deliverAfter?: Record<string, Date>) =>
  t.mesh.client.publish(
    topic,
    ids.map((id) => ({ id, source: "test", type: "t.v1.E", deliverAfter: deliverAfter?.[id] })),
  );

/**
 * The subscription's lease batches: their events by id, and whether the transaction that wrote the
 * batch is the one that stored its events (a hand-off) or a later one (a lease from the cursor).
 */
async function batchesOf(subscription: string) {
  const rows = await sql`
    SELECT array_agg(e.id ORDER BY e.seq) AS ids,
           bool_and(e.xmin::text = b.xmin::text) AS with_publish
    FROM pgmesh.lease_batches b
    JOIN pgmesh.subscriptions s ON s.queue = b.queue
    CROSS JOIN LATERAL unnest(b.seqs) AS x(seq)
    JOIN pgmesh.events e ON e.seq = x.seq
    WHERE s.name = ${subscription}
    GROUP BY b.id ORDER BY min(e.seq)`;
  return rows.map((r) => ({ ids: r.ids as string[], withPublish: r.with_publish as boolean }));
}

/**
 * Creates `topic` and its subscription `topic`.sub, and opens a stream on it; waits for its
 * dispatcher to read the (empty) cursor, so that it is idle and drained.
 */
async function idleStream(topic: string, window: number): Promise<StreamProbe> {
  await t.mesh.client.createTopic(topic);
  await t.mesh.client.createSubscription(`${topic}.sub`, topic);
  const probe = await StreamProbe.open(t.mesh.client, `${topic}.sub`, window);
  await sleep(200);
  return probe;
}

const ids = (deliveries: Delivery[]) => deliveries.map((d) => d.event?.id);

describe("the publish hand-off", () => {
  it("leases a publish's events to an idle stream in the publish's own transaction", async () => {
    const probe = await idleStream("ho.idle", 100);
    await publish("ho.idle", ["a", "b", "c"]);
    const delivered = await probe.waitForDeliveries(3);
    expect(ids(delivered)).toEqual(["a", "b", "c"]);
    expect(await batchesOf("ho.idle.sub")).toEqual([{ ids: ["a", "b", "c"], withPublish: true }]);
    // Counted as handed off, apart from the deliveries leased from the cursor.
    const metrics = await (await fetch(`http://${t.mesh.broker.metricsAddress}/metrics`)).text();
    expect(metrics).toContain('pgmesh_handed_off_total{subscription="ho.idle.sub"} 3');
    // The cursor moved with them: nothing is left to lease, and acks clear the batch.
    const results = await probe.ackAndWait(delivered.map((d) => d.ackId));
    expect(results.every((r) => r.status === AckStatus.ACK_STATUS_ACKED)).toBe(true);
    expect(await batchesOf("ho.idle.sub")).toEqual([]);
    const [cursor] = await sql`
      SELECT c.position = (SELECT max(e.seq) FROM pgmesh.events e WHERE e.topic_id = c.topic_id) AS at_head
      FROM pgmesh.cursors c JOIN pgmesh.subscriptions s ON s.queue = c.queue
      WHERE s.name = 'ho.idle.sub'`;
    expect(cursor?.at_head).toBe(true);
    // Published again (duplicates): nothing stored, nothing handed off, nothing delivered.
    await publish("ho.idle", ["a", "b"]);
    await sleep(300);
    expect(probe.deliveries).toHaveLength(3);
    await probe.close();
  });

  it("takes no more than the streams' free window; the rest is leased from the cursor once room frees", async () => {
    const probe = await idleStream("ho.room", 2);
    await publish("ho.room", ["a", "b", "c", "d", "e"]);
    const first = await probe.waitForDeliveries(2);
    expect(ids(first)).toEqual(["a", "b"]);
    expect(await batchesOf("ho.room.sub")).toEqual([{ ids: ["a", "b"], withPublish: true }]);
    await probe.ackAndWait(first.map((d) => d.ackId));
    const more = await probe.waitForDeliveries(4);
    await probe.ackAndWait(more.slice(2).map((d) => d.ackId));
    const rest = await probe.waitForDeliveries(5);
    expect(ids(rest)).toEqual(["a", "b", "c", "d", "e"]);
    expect((await batchesOf("ho.room.sub")).every((b) => !b.withPublish)).toBe(true);
    await probe.close();
  });

  it("stops short of a delayed event, which waits for its time as a job", async () => {
    const probe = await idleStream("ho.delay", 10);
    const due = new Date(Date.now() + 1_500);
    await publish("ho.delay", ["a", "later", "c"], { later: due });
    const early = await probe.waitForDeliveries(2);
    expect(ids(early)).toEqual(["a", "c"]);
    const batches = await batchesOf("ho.delay.sub");
    expect(batches[0]).toEqual({ ids: ["a"], withPublish: true });
    const [job] = await sql`
      SELECT j.state::text AS state FROM pgboss.job j JOIN pgmesh.subscriptions s ON s.queue = j.name
      WHERE s.name = 'ho.delay.sub'`;
    expect(job?.state).toBe("created");
    const all = await probe.waitForDeliveries(3, 5_000);
    expect(ids(all)).toEqual(["a", "c", "later"]);
    expect(Date.now()).toBeGreaterThanOrEqual(due.getTime());
    await probe.close();
  });

  it("sees the publish it waited for on the topic's lock, and then leaves both to the cursor", async () => {
    const probe = await idleStream("ho.wait", 10);
    // Another publish holds the topic's lock with its event stored, as a publish of another broker
    // does until it commits. The broker's publish (with this broker's idle stream asking for a
    // hand-off) waits for that lock; its snapshot is older than the other's commit.
    const other = postgres(t.db.url, { max: 1, onnotice: () => {} });
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked = () => {};
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const otherPublish = other.begin(async (tx) => {
      await tx`SELECT 1 FROM pgmesh.topics WHERE name = 'ho.wait' FOR NO KEY UPDATE`;
      await tx`INSERT INTO pgmesh.events (topic_id, id, source, type)
               VALUES (pgmesh.topic_id('ho.wait'), 'first', 'other', 't.v1.E')`;
      locked();
      await held;
    });
    await isLocked;
    const mine = publish("ho.wait", ["second"]);
    await sleep(300);
    release();
    await otherPublish;
    await mine;
    await other.end();
    // Handing "second" off would have moved the cursor past "first" for good.
    const delivered = await probe.waitForDeliveries(2);
    expect(ids(delivered)).toEqual(["first", "second"]);
    expect((await batchesOf("ho.wait.sub")).every((b) => !b.withPublish)).toBe(true);
    await probe.close();
  });
});
