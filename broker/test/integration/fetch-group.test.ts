// A round of fetches from many subscriptions' queues (dispatchers woken together, as when a
// thousand streams reconnect) asks once which queues have a delivery due, and runs pg-boss's
// fetch only on those: an empty queue costs no fetch statement.
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
});
