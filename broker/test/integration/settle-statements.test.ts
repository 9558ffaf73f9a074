// The settles' pg-boss statements (complete, deleteJob, fail) run prepared: parsed and planned once
// per connection, not at every ack (bench (d): planning the ack's DELETE took four times as long as
// running it). That is only bounded because pg-boss gives each of them one text for every queue;
// this checks it on the pg-boss version in use, through the connection's pg_prepared_statements.
import { describe, expect, it } from "vitest";
import type { Lease, Subscription } from "../../src/delivery/model.ts";
import { useTestBroker } from "../support/broker.ts";
import { useJobQueue } from "../support/job-queue.ts";

// A broker migrates the database and creates the subscriptions; the test settles through a queue of
// its own, on one connection, so that the prepared statements it lists are the settles'.
const t = useTestBroker();
const q = useJobQueue(t, { connections: 1 });

/**
 * Subscriptions of their own topic (the broker creates their queues; no stream takes from them),
 * three events published, then on each queue one delivery acked, one retried, one dead-lettered.
 */
async function settleOn(topic: string, names: string[], ackedRetentionSeconds: number): Promise<void> {
  const { client } = t.mesh;
  await client.createTopic(topic);
  for (const name of names) await client.createSubscription(name, topic, { ackedRetentionSeconds });
  await client.publish(
    topic,
    ["1", "2", "3"].map((id) => ({ id, source: "s", type: "t" })),
  );
  for (const name of names) {
    const [row] = await q.sql`SELECT queue FROM pgmesh.subscriptions WHERE name = ${name}`;
    const subscription = { name, queue: row?.queue as string, ackedRetentionSeconds } as Subscription;
    // Leased from the cursor as jobs inserted already active (the holding of a subscription that
    // keeps acked deliveries, and what pg-boss's settles act on).
    const read = await q.queue.readCursor(subscription.queue, 3);
    const last = read?.events.at(-1)?.seq;
    if (!read || !last) throw new Error(`expected events after the cursor of ${name}`);
    const leases = await q.queue.advanceCursor(
      subscription.queue,
      read.position,
      last,
      read.events.map((e) => ({ seq: e.seq, leased: true })),
      "jobs",
    );
    const [acked, retried, dead] = read.events.map((e) => leases?.get(e.seq) as Lease);
    if (!acked || !retried || !dead) throw new Error(`expected 3 leases from ${name}`);
    expect((await q.queue.complete(subscription, [acked])).has(acked.jobId)).toBe(true);
    const failed = await q.queue.fail(subscription, [
      { lease: retried, retryAfterSeconds: 5, error: "boom" },
      { lease: dead, deadLetter: "max_attempts", error: "boom" },
    ]);
    expect(failed).toEqual(new Set([retried.jobId, dead.jobId]));
  }
}

const preparedOnJobs = async () =>
  (
    await q.sql<{ statement: string }[]>`
      SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%pgboss.job%' ORDER BY statement`
  ).map((r) => r.statement);

describe("settle statements", () => {
  it("are prepared once per connection, one text for every queue", async () => {
    await settleOn("settle.a", ["settle.a1", "settle.a2", "settle.a3"], 0);
    await settleOn("settle.r", ["settle.r1"], 3600);
    const afterFew = await preparedOnJobs();
    expect(afterFew.some((s) => s.includes("DELETE FROM pgboss.job"))).toBe(true);
    expect(afterFew.length).toBeGreaterThanOrEqual(3);

    await settleOn("settle.b", ["settle.b1", "settle.b2", "settle.b3", "settle.b4", "settle.b5"], 0);
    await settleOn("settle.s", ["settle.s1", "settle.s2"], 3600);
    // More queues, the same statements: none names its queue.
    expect(await preparedOnJobs()).toEqual(afterFew);
    const queues = (await q.sql`SELECT queue FROM pgmesh.subscriptions`).map((r) => r.queue as string);
    expect(afterFew.filter((s) => queues.some((q) => s.includes(q)))).toEqual([]);
  });
});
