// A round of fetches from many subscriptions' queues (dispatchers woken together, as when a
// thousand streams reconnect) asks once which queues have a delivery due, and runs pg-boss's
// fetch only on those: an empty queue costs no fetch statement. Cursor reads and advances of many
// subscriptions are grouped the same way, one statement and one transaction a round.
import { describe, expect, it, vi } from "vitest";
import { useTestBroker } from "../support/broker.ts";
import { useJobQueue } from "../support/job-queue.ts";

// A broker migrates the database (pg-boss's schema included); the test drives a queue of its own.
const t = useTestBroker();
const q = useJobQueue(t);

describe("a round of fetches", () => {
  it("fetches only from the queues that have a delivery due", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `round.q${i}`);
    for (const name of names) {
      await q.queue.createQueue(name, { leaseSeconds: 30, ordering: false, ackedRetentionSeconds: 0 });
    }
    await q.queue.boss.insert("round.q7", [{ data: { e: "1" } }, { data: { e: "2" } }]);
    await q.queue.boss.insert("round.q13", [{ data: { e: "3" } }]);
    // Due later: the question must not count it, as pg-boss's fetch would not take it.
    await q.queue.boss.insert("round.q15", [{ data: { e: "4" }, startAfter: new Date(Date.now() + 60_000) }]);
    const fetch = vi.spyOn(q.queue.boss, "fetch");
    try {
      const leases = await Promise.all(names.map((name) => q.queue.lease(name, 10)));
      expect(leases.map((l) => l.length)).toEqual(names.map((_, i) => (i === 7 ? 2 : i === 13 ? 1 : 0)));
      expect(leases[7]?.map((l) => l.eventSeq).sort()).toEqual(["1", "2"]);
      // The first leases go at once, each alone (two rounds may be in flight); the rest wait and go
      // as one round, which fetches from q7 and q13 only. Each used to run a fetch statement.
      const fetched = fetch.mock.calls.map(([name]) => name);
      expect(fetched).toContain("round.q7");
      expect(fetched).toContain("round.q13");
      expect(fetched.filter((name) => !["round.q7", "round.q13"].includes(name)).length).toBeLessThanOrEqual(
        2,
      );
    } finally {
      fetch.mockRestore();
    }
  });
  it("groups many subscriptions' cursor reads and advances, each still fenced on its own position", async () => {
    const { client } = t.mesh;
    await client.createTopic("round.cursor");
    const names = Array.from({ length: 20 }, (_, i) => `round.cursor.s${i}`);
    for (const name of names) await client.createSubscription(name, "round.cursor");
    await client.publish(
      "round.cursor",
      ["a", "b", "c"].map((id) => ({ id, source: "test", type: "t.v1.E" })),
    );
    const queues = await Promise.all(
      names.map(
        async (name) =>
          (await q.sql`SELECT queue FROM pgmesh.subscriptions WHERE name = ${name}`)[0]?.queue as string,
      ),
    );
    const reads = await Promise.all(queues.map((queue) => q.queue.readCursor(queue, 10)));
    expect(reads.map((r) => r?.events.map((e) => e.id))).toEqual(queues.map(() => ["a", "b", "c"]));
    const advance = (i: number) => {
      const read = reads[i];
      if (!read) throw new Error("expected a read");
      return q.queue.advanceCursor(
        queues[i] as string,
        read.position,
        read.events.at(-1)?.seq as string,
        read.events.map((e) => ({ seq: e.seq, leased: true })),
        "batch",
      );
    };
    // Every subscription at once, and the first one twice from the same position: one of its two
    // advances wins, the other finds the cursor moved.
    const [again, ...advanced] = await Promise.all([advance(0), ...queues.map((_, i) => advance(i))]);
    expect(advanced.slice(1).map((leases) => leases?.size)).toEqual(queues.slice(1).map(() => 3));
    expect([again?.size, advanced[0]?.size].sort()).toEqual([3, undefined]);
    const after = await Promise.all(queues.map((queue) => q.queue.readCursor(queue, 10)));
    expect(after.map((r) => r?.events.length)).toEqual(queues.map(() => 0));
  });
});
