// A round of fetches from many subscriptions' queues (dispatchers woken together, as when a
// thousand streams reconnect) asks once which queues have a delivery due, and runs pg-boss's
// fetch only on those: an empty queue costs no fetch statement. Cursor reads and advances of many
// subscriptions are grouped the same way, one statement and one transaction a round.
import { describe, expect, it, vi } from "vitest";
import { selectAfterCursors } from "../../src/store/queries/cursors.ts";
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

  it("reads an event once for the cursors of a round that share it, each from its own position and limit", async () => {
    const { client } = t.mesh;
    await client.createTopic("round.shared");
    await client.createTopic("round.other");
    const subs = ["round.shared.a", "round.shared.b", "round.shared.c"];
    for (const name of subs) await client.createSubscription(name, "round.shared");
    await client.createSubscription("round.other.a", "round.other");
    await client.publish(
      "round.shared",
      ["e1", "e2", "e3", "e4"].map((id) => ({ id, source: "test", type: "t.v1.E" })),
    );
    await client.publish("round.other", [{ id: "o1", source: "test", type: "t.v1.E" }]);
    const queueOf = async (name: string) =>
      (await q.sql`SELECT queue FROM pgmesh.subscriptions WHERE name = ${name}`)[0]?.queue as string;
    const [a, b, c, other] = await Promise.all([...subs, "round.other.a"].map(queueOf));
    const seqs = (
      await q.sql`SELECT seq::text AS seq FROM pgmesh.events
      WHERE topic_id = pgmesh.topic_id('round.shared') ORDER BY seq`
    ).map((r) => r.seq as string);
    // b has passed the first event; c's cursor is moved by hand past the first two.
    await q.sql`UPDATE pgmesh.cursors SET position = ${seqs[0] as string}::bigint WHERE queue = ${b as string}`;
    await q.sql`UPDATE pgmesh.cursors SET position = ${seqs[1] as string}::bigint WHERE queue = ${c as string}`;
    const reads = await selectAfterCursors(q.sql, [
      { queue: a as string, limit: 3 },
      { queue: b as string, limit: 10 },
      { queue: c as string, limit: 1 },
      { queue: other as string, limit: 10 },
      { queue: "no.such.queue", limit: 10 },
    ]);
    const ids = (queue: string | undefined) => reads.get(queue as string)?.events.map((e) => e.id);
    expect(ids(a)).toEqual(["e1", "e2", "e3"]);
    expect(ids(b)).toEqual(["e2", "e3", "e4"]);
    expect(ids(c)).toEqual(["e3"]);
    expect(ids(other)).toEqual(["o1"]);
    expect(reads.has("no.such.queue")).toBe(false);
    expect(reads.get(c as string)?.position).toBe(seqs[1]);
    // One object per event, whole, whichever cursor's row carried its columns.
    const e3 = [a, b, c].map((queue) => reads.get(queue as string)?.events.find((e) => e.id === "e3"));
    expect(e3[0]).toBe(e3[1]);
    expect(e3[1]).toBe(e3[2]);
    expect(e3[0]).toMatchObject({
      id: "e3",
      source: "test",
      type: "t.v1.E",
      topic: "round.shared",
      seq: seqs[2],
    });
    expect(e3[0]?.publishedAt).toBeInstanceOf(Date);
  });
});
