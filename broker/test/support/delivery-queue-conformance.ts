// One suite for every implementation of the delivery port (delivery/ports.ts DeliveryQueue): the
// Postgres one (store/queue.ts, integration/delivery-queue-conformance.test.ts) and the in-memory
// test kit (support/memory-delivery-queue.ts, unit/memory-delivery-queue.test.ts). What it checks is
// the contract the delivery logic relies on: the cursor's fence, settles fenced to the attempt,
// retries and schedules falling due, dead letters leaving the queue, lapses and extensions.
import { describe, expect, it } from "vitest";
import type { Lease, LeaseHolding, Subscription } from "../../src/delivery/model.ts";
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
async function leaseAll(queue: DeliveryQueue, sub: Subscription, holding: LeaseHolding): Promise<Lease[]> {
  const read = await queue.readCursor(sub.queue, 100);
  const last = read?.events.at(-1)?.seq;
  if (!read || !last) return [];
  const leases = await queue.advanceCursor(
    sub.queue,
    read.position,
    last,
    read.events.map((e) => ({ seq: e.seq, leased: true })),
    holding,
  );
  return read.events.map((e) => leases?.get(e.seq) as Lease);
}

const HOLDINGS: LeaseHolding[] = ["batch", "jobs"];

export function deliveryQueueConformance(name: string, fx: QueueFixture): void {
  describe(`the delivery port: ${name}`, () => {
    it("leases from the cursor once: an advance from a position the cursor left writes nothing", async () => {
      const sub = await fx.subscription();
      await fx.publish(sub.topic, ["a", "b"]);
      const read = await fx.queue().readCursor(sub.queue, 10);
      expect(read?.events.map((e) => e.id)).toEqual(["a", "b"]);
      const from = read?.position as string;
      const first = await fx.queue().advanceCursor(
        sub.queue,
        from,
        read?.events[1]?.seq as string,
        [
          { seq: read?.events[0]?.seq as string, leased: true },
          { seq: read?.events[1]?.seq as string, leased: true },
        ],
        "batch",
      );
      expect(first?.size).toBe(2);
      const again = await fx
        .queue()
        .advanceCursor(
          sub.queue,
          from,
          read?.events[1]?.seq as string,
          [{ seq: read?.events[0]?.seq as string, leased: true }],
          "jobs",
        );
      expect(again).toBeUndefined();
      expect((await fx.queue().readCursor(sub.queue, 10))?.events).toEqual([]);
      expect(await fx.queue().lease(sub.queue, 10)).toEqual([]);
    });

    it.each(HOLDINGS)(
      "settles a lease once, and only for the attempt it names (held as %s)",
      async (holding) => {
        const sub = await fx.subscription();
        await fx.publish(sub.topic, ["a", "b"]);
        const [a, b] = await leaseAll(fx.queue(), sub, holding);
        if (!a || !b) throw new Error("expected two leases");
        expect(await fx.queue().complete(sub, [a])).toEqual(new Set([a.jobId]));
        expect(await fx.queue().complete(sub, [a])).toEqual(new Set());
        expect(await fx.queue().complete(sub, [{ ...b, retryCount: 1 }])).toEqual(new Set());
        expect(await fx.queue().complete(sub, [b])).toEqual(new Set([b.jobId]));
      },
    );

    it.each(HOLDINGS)(
      "brings a failed delivery back as its next attempt once its delay ran out, and never a dead letter (held as %s)",
      async (holding) => {
        const sub = await fx.subscription();
        await fx.publish(sub.topic, ["now", "later", "dead"]);
        const [now, later, dead] = await leaseAll(fx.queue(), sub, holding);
        if (!now || !later || !dead) throw new Error("expected three leases");
        const failed = await fx.queue().fail(sub, [
          { lease: now, retryAfterSeconds: 0, error: "try again" },
          { lease: later, retryAfterSeconds: 3600, error: "much later" },
          { lease: dead, deadLetter: "rejected", error: "poison" },
        ]);
        expect(failed).toEqual(new Set([now.jobId, later.jobId, dead.jobId]));
        expect(await fx.queue().queuesWithWork([sub.queue])).toEqual(new Set([sub.queue]));
        // Attempt 2 of the same event (a batch's slot comes back as a job of its own).
        const again = await fx.queue().lease(sub.queue, 10);
        expect(again.map((l) => [l.eventSeq, l.retryCount])).toEqual([[now.eventSeq, 1]]);
        // The old attempt's settle is stale; the new one's is not.
        expect(await fx.queue().complete(sub, [now])).toEqual(new Set());
        expect(await fx.queue().complete(sub, again)).toEqual(new Set(again.map((l) => l.jobId)));
        expect(await fx.queue().lease(sub.queue, 10)).toEqual([]);
        expect(await fx.queue().queuesWithWork([sub.queue])).toEqual(new Set());
      },
    );

    it("holds a scheduled delivery until its time and reports no work for it before then", async () => {
      const sub = await fx.subscription();
      await fx.publish(sub.topic, ["delayed"]);
      const read = await fx.queue().readCursor(sub.queue, 10);
      const seq = read?.events[0]?.seq as string;
      await fx
        .queue()
        .advanceCursor(
          sub.queue,
          read?.position as string,
          seq,
          [{ seq, leased: false, startAfter: new Date(Date.now() + 3_600_000) }],
          "batch",
        );
      expect(await fx.queue().queuesWithWork([sub.queue])).toEqual(new Set());
      expect(await fx.queue().lease(sub.queue, 10)).toEqual([]);
    });

    it("names the queues whose cursor is behind or that hold a due delivery, and no other", async () => {
      const [behind, idle] = [await fx.subscription(), await fx.subscription()];
      await fx.publish(behind.topic, ["x"]);
      expect(await fx.queue().queuesWithWork([behind.queue, idle.queue])).toEqual(new Set([behind.queue]));
    });

    it.each(HOLDINGS)(
      "finds a lease past its deadline lapsed, and not one extended past it (held as %s)",
      async (holding) => {
        const sub = await fx.subscription();
        await fx.publish(sub.topic, ["short", "long", "untouched"]);
        const [short, long] = await leaseAll(fx.queue(), sub, holding);
        if (!short || !long) throw new Error("expected two leases");
        // An extended lease may come back as another (a batch's slot gets a job of its own); the
        // stream holds that one from then on.
        const shortNow = (await fx.queue().extend(sub.queue, [short], 1)).get(short.jobId);
        const longNow = (await fx.queue().extend(sub.queue, [long], 3600)).get(long.jobId);
        expect(shortNow?.eventSeq).toBe(short.eventSeq);
        expect(longNow?.eventSeq).toBe(long.eventSeq);
        await fx.pass(2_100);
        const lapsed = (await fx.queue().findLapsed(1000))
          .filter((l) => l.subscription === sub.name || l.subscription === sub.queue)
          .map((l) => l.lease);
        expect(lapsed.map((l) => l.jobId)).toContain(shortNow?.jobId);
        expect(lapsed.map((l) => l.eventSeq)).not.toContain(long.eventSeq);
        // The extended lease settles; the one it was is stale.
        expect(await fx.queue().complete(sub, [longNow as Lease])).toEqual(new Set([longNow?.jobId]));
        if (longNow?.jobId !== long.jobId) expect(await fx.queue().complete(sub, [long])).toEqual(new Set());
      },
    );
  });
}
