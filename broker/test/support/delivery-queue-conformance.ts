// One suite for every implementation of the delivery port (delivery/ports.ts DeliveryQueue): the
// Postgres one (store/queue.ts, integration/delivery-queue-conformance.test.ts) and the in-memory
// test kit (support/memory-delivery-queue.ts, unit/memory-delivery-queue.test.ts). What it checks is
// the contract the delivery logic relies on: the cursor's fence, settles fenced to the attempt,
// retries and schedules falling due, dead letters leaving the queue, lapses and extensions.
import { describe, expect, it } from "vitest";
import type { Lease, Subscription } from "../../src/delivery/model.ts";
import type { DeliveryQueue } from "../../src/delivery/ports.ts";

export interface QueueFixture {
  queue: () => DeliveryQueue;
  /** A fresh subscription on a fresh topic (ack deadline 30 s), its cursor at the topic's head. */
  subscription: () => Promise<Subscription>;
  publish: (topic: string, ids: string[]) => Promise<void>;
  /** Lets `ms` pass: a fake clock moves; Postgres's really waits. */
  pass: (ms: number) => Promise<void>;
}

/** Leases every event after the cursor, as a dispatcher of an unordered subscription would. */
async function leaseAll(queue: DeliveryQueue, sub: Subscription): Promise<Lease[]> {
  const read = await queue.readCursor(sub.queue, 100);
  const last = read?.events.at(-1)?.seq;
  if (!read || !last) return [];
  const ids = await queue.advanceCursor(
    sub.queue,
    read.position,
    last,
    read.events.map((e) => ({ seq: e.seq, leased: true })),
  );
  return read.events.map((e) => ({ jobId: ids?.get(e.seq) as string, retryCount: 0, eventSeq: e.seq }));
}

export function deliveryQueueConformance(name: string, fx: QueueFixture): void {
  describe(`the delivery port: ${name}`, () => {
    it("leases from the cursor once: an advance from a position the cursor left writes nothing", async () => {
      const sub = await fx.subscription();
      await fx.publish(sub.topic, ["a", "b"]);
      const read = await fx.queue().readCursor(sub.queue, 10);
      expect(read?.events.map((e) => e.id)).toEqual(["a", "b"]);
      const from = read?.position as string;
      const first = await fx.queue().advanceCursor(sub.queue, from, read?.events[1]?.seq as string, [
        { seq: read?.events[0]?.seq as string, leased: true },
        { seq: read?.events[1]?.seq as string, leased: true },
      ]);
      expect(first?.size).toBe(2);
      const again = await fx
        .queue()
        .advanceCursor(sub.queue, from, read?.events[1]?.seq as string, [
          { seq: read?.events[0]?.seq as string, leased: true },
        ]);
      expect(again).toBeUndefined();
      expect((await fx.queue().readCursor(sub.queue, 10))?.events).toEqual([]);
      expect(await fx.queue().lease(sub.queue, 10)).toEqual([]);
    });

    it("settles a lease once, and only for the attempt it names", async () => {
      const sub = await fx.subscription();
      await fx.publish(sub.topic, ["a", "b"]);
      const [a, b] = await leaseAll(fx.queue(), sub);
      if (!a || !b) throw new Error("expected two leases");
      expect(await fx.queue().complete(sub, [a])).toEqual(new Set([a.jobId]));
      expect(await fx.queue().complete(sub, [a])).toEqual(new Set());
      expect(await fx.queue().complete(sub, [{ ...b, retryCount: 1 }])).toEqual(new Set());
      expect(await fx.queue().complete(sub, [b])).toEqual(new Set([b.jobId]));
    });

    it("brings a failed delivery back as its next attempt once its delay ran out, and never a dead letter", async () => {
      const sub = await fx.subscription();
      await fx.publish(sub.topic, ["now", "later", "dead"]);
      const [now, later, dead] = await leaseAll(fx.queue(), sub);
      if (!now || !later || !dead) throw new Error("expected three leases");
      const failed = await fx.queue().fail(sub, [
        { lease: now, retryAfterSeconds: 0, error: "try again" },
        { lease: later, retryAfterSeconds: 3600, error: "much later" },
        { lease: dead, deadLetter: "rejected", error: "poison" },
      ]);
      expect(failed).toEqual(new Set([now.jobId, later.jobId, dead.jobId]));
      expect(await fx.queue().queuesWithWork([sub.queue])).toEqual(new Set([sub.queue]));
      const again = await fx.queue().lease(sub.queue, 10);
      expect(again).toEqual([{ jobId: now.jobId, retryCount: 1, eventSeq: now.eventSeq }]);
      // The old attempt's settle is stale; the new one's is not.
      expect(await fx.queue().complete(sub, [now])).toEqual(new Set());
      expect(await fx.queue().complete(sub, again)).toEqual(new Set([now.jobId]));
      expect(await fx.queue().lease(sub.queue, 10)).toEqual([]);
      expect(await fx.queue().queuesWithWork([sub.queue])).toEqual(new Set());
    });

    it("holds a scheduled delivery until its time and reports no work for it before then", async () => {
      const sub = await fx.subscription();
      await fx.publish(sub.topic, ["delayed"]);
      const read = await fx.queue().readCursor(sub.queue, 10);
      const seq = read?.events[0]?.seq as string;
      await fx
        .queue()
        .advanceCursor(sub.queue, read?.position as string, seq, [
          { seq, leased: false, startAfter: new Date(Date.now() + 3_600_000) },
        ]);
      expect(await fx.queue().queuesWithWork([sub.queue])).toEqual(new Set());
      expect(await fx.queue().lease(sub.queue, 10)).toEqual([]);
    });

    it("names the queues whose cursor is behind or that hold a due delivery, and no other", async () => {
      const [behind, idle] = [await fx.subscription(), await fx.subscription()];
      await fx.publish(behind.topic, ["x"]);
      expect(await fx.queue().queuesWithWork([behind.queue, idle.queue])).toEqual(new Set([behind.queue]));
    });

    it("finds a lease past its deadline lapsed, and not one extended past it", async () => {
      const sub = await fx.subscription();
      await fx.publish(sub.topic, ["short", "long"]);
      const [short, long] = await leaseAll(fx.queue(), sub);
      if (!short || !long) throw new Error("expected two leases");
      expect(await fx.queue().extend(sub.queue, [short], 1)).toEqual(new Set([short.jobId]));
      expect(await fx.queue().extend(sub.queue, [long], 3600)).toEqual(new Set([long.jobId]));
      await fx.pass(2_100);
      const lapsed = (await fx.queue().findLapsed(100)).map((l) => l.lease.jobId);
      expect(lapsed).toContain(short.jobId);
      expect(lapsed).not.toContain(long.jobId);
    });
  });
}
