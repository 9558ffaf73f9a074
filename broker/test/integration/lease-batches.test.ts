// Leased batches (migration 0041): what a lease from the cursor writes on the happy path, and what
// becomes of a batch's events that are not simply acked.
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { StreamProbe } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";
import { heldUpkeepPass, testUpkeep } from "../support/upkeep-pass.ts";

// The test runs upkeep passes itself; the broker's own would race it for the lock.
const t = useTestBroker({ PGMESH_UPKEEP_MS: "3600000" });
let sql: postgres.Sql;
beforeAll(() => {
  sql = postgres(t.db.url, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
});

const publish = (topic: string, ids: string[]) =>
  t.mesh.client.publish(
    topic,
    ids.map((id) => ({ id, source: "test", type: "t.v1.E" })),
  );

/** The subscription's deliveries as rows: pg-boss jobs, and batches with their pending slots. */
async function rowsOf(subscription: string) {
  const [row] = await sql`
    SELECT (SELECT count(*) FROM pgboss.job j WHERE j.name = s.queue)::int AS jobs,
           (SELECT count(*) FROM pgmesh.lease_batches b WHERE b.queue = s.queue)::int AS batches,
           (SELECT coalesce(sum(bit_count(b.pending)), 0) FROM pgmesh.lease_batches b
             WHERE b.queue = s.queue)::int AS pending
    FROM pgmesh.subscriptions s WHERE s.name = ${subscription}`;
  return row as { jobs: number; batches: number; pending: number };
}

describe("leased batches", () => {
  it("hold the events a lease takes from the cursor in one row and no job; acks clear it, each once", async () => {
    const { client } = t.mesh;
    await client.createTopic("lb.happy");
    await client.createSubscription("lb.happy.sub", "lb.happy");
    await publish(
      "lb.happy",
      Array.from({ length: 300 }, (_, i) => `e-${i}`),
    );
    const probe = await StreamProbe.open(client, "lb.happy.sub", 300);
    const delivered = await probe.waitForDeliveries(300);
    const rows = await rowsOf("lb.happy.sub");
    expect(rows.jobs).toBe(0);
    expect(rows.pending).toBe(300);
    expect(rows.batches).toBeLessThanOrEqual(3);
    expect((await client.subscriptionStats("lb.happy.sub")).inFlight).toBe(300);

    const ids = delivered.map((d) => d.ackId);
    const first = await probe.ackAndWait(ids.slice(0, 100));
    expect(first.every((r) => r.status === AckStatus.ACK_STATUS_ACKED)).toBe(true);
    expect((await rowsOf("lb.happy.sub")).pending).toBe(200);
    // Acked already: stale, and nothing changes.
    const again = await probe.ackAndWait(ids.slice(0, 2));
    expect(again.map((r) => r.status)).toEqual([AckStatus.ACK_STATUS_STALE, AckStatus.ACK_STATUS_STALE]);
    await probe.ackAndWait(ids.slice(100));
    expect(await rowsOf("lb.happy.sub")).toEqual({ jobs: 0, batches: 0, pending: 0 });
    expect((await client.subscriptionStats("lb.happy.sub")).inFlight).toBe(0);
    probe.cancel();
  });

  it("give a dead stream's unacked events back as attempt 2 and never its acked ones", async () => {
    const { client } = t.mesh;
    await client.createTopic("lb.crash");
    await client.createSubscription("lb.crash.sub", "lb.crash", {
      retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 },
    });
    await publish(
      "lb.crash",
      Array.from({ length: 100 }, (_, i) => `e-${i}`),
    );
    const crashing = await StreamProbe.open(client, "lb.crash.sub", 100);
    const held = await crashing.waitForDeliveries(100);
    await crashing.ackAndWait(held.slice(0, 40).map((d) => d.ackId));
    crashing.cancel();
    const next = await StreamProbe.open(client, "lb.crash.sub", 100);
    const back = await next.waitForDeliveries(60);
    expect(back.map((d) => d.event?.id).sort()).toEqual(
      held
        .slice(40)
        .map((d) => d.event?.id)
        .sort(),
    );
    expect(back.every((d) => d.deliveryAttempt === 2)).toBe(true);
    await next.ackAndWait(back.map((d) => d.ackId));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(next.deliveries).toHaveLength(60);
    expect(await rowsOf("lb.crash.sub")).toEqual({ jobs: 0, batches: 0, pending: 0 });
    next.cancel();
  });

  it("let one event leave its batch when extended, a nack or a reject, while the rest stay in it", async () => {
    const { client } = t.mesh;
    await client.createTopic("lb.split");
    await client.createSubscription("lb.split.sub", "lb.split", {
      retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 },
    });
    await publish("lb.split", ["extended", "nacked", "rejected", "kept"]);
    const probe = await StreamProbe.open(client, "lb.split.sub", 4);
    const byId = new Map((await probe.waitForDeliveries(4)).map((d) => [d.event?.id, d.ackId]));
    const ack = (id: string) => byId.get(id) as string;
    const [extended] = await probe.settleAndWait(() => probe.extend([ack("extended")], 600), 1);
    expect(extended?.status).toBe(AckStatus.ACK_STATUS_EXTENDED);
    // Extended past the batch's deadline: a job of its own, still held by this stream.
    expect(await rowsOf("lb.split.sub")).toEqual({ jobs: 1, batches: 1, pending: 3 });
    await probe.settleAndWait(() => probe.reject([ack("rejected")], "poison"), 1);
    await probe.settleAndWait(() => probe.nack([ack("nacked")], "later", 0), 1);
    const retried = await probe.waitForDeliveries(5);
    expect(retried[4]?.event?.id).toBe("nacked");
    expect(retried[4]?.deliveryAttempt).toBe(2);
    // The extended event's ack id still names it after it moved to its job.
    const acks = await probe.ackAndWait([ack("extended"), ack("kept"), retried[4]?.ackId as string]);
    expect(acks.map((r) => r.status)).toEqual([
      AckStatus.ACK_STATUS_ACKED,
      AckStatus.ACK_STATUS_ACKED,
      AckStatus.ACK_STATUS_ACKED,
    ]);
    expect(await rowsOf("lb.split.sub")).toEqual({ jobs: 0, batches: 0, pending: 0 });
    const letters = await client.listDeadLetters({ subscription: "lb.split.sub" });
    expect(letters.deadLetters.map((d) => [d.event?.id, d.attempts])).toEqual([["rejected", 1]]);
    probe.cancel();
  });

  it("keep the events they hold from retention, and a seek drops them (their acks answer STALE)", async () => {
    const { client } = t.mesh;
    await client.createTopic("lb.keep");
    await client.createSubscription("lb.keep.sub", "lb.keep");
    await publish("lb.keep", ["a", "b", "c"]);
    const probe = await StreamProbe.open(client, "lb.keep.sub", 3);
    const held = await probe.waitForDeliveries(3);
    await client.updateTopic("lb.keep", { retentionSeconds: 60 });
    await sql`UPDATE pgmesh.events SET published_at = now() - interval '1 hour' WHERE topic_id = pgmesh.topic_id('lb.keep')`;
    const upkeep = testUpkeep(sql);
    // The cursor passed all three, but a batch holds them in flight: a pass that runs keeps them.
    await heldUpkeepPass(sql);
    expect(
      Number(
        (
          await sql`SELECT count(*)::int AS n FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('lb.keep')`
        )[0]?.n,
      ),
    ).toBe(3);
    await client.seekSubscription("lb.keep.sub", "now");
    expect(await rowsOf("lb.keep.sub")).toEqual({ jobs: 0, batches: 0, pending: 0 });
    const late = await probe.ackAndWait(held.map((d) => d.ackId));
    expect(late.every((r) => r.status === AckStatus.ACK_STATUS_STALE)).toBe(true);
    let deleted = 0;
    await until(async () => {
      deleted += (await upkeep.runOnce()).eventsDeleted;
      return deleted >= 3;
    }, "retention to delete the three events once nothing holds them");
    expect(deleted).toBe(3);
    probe.cancel();
  });
});
