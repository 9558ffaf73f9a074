import { describe, expect, it } from "vitest";
import { Consumer } from "../../src/delivery/consumer.ts";
import type { Lease, Subscription } from "../../src/delivery/model.ts";

const subscription: Subscription = {
  name: "s",
  topic: "t",
  ackDeadlineSeconds: 10,
  ackedRetentionSeconds: 0,
  ordering: false,
  filter: "",
  maxDeliveryAttempts: 5,
  deadLettering: true,
  retryPolicy: { initialBackoffSeconds: 1, maxBackoffSeconds: 60, multiplier: 2, jitter: 0 },
  createdAt: new Date(),
  queue: "q",
};
const lease = (n: number, retryCount = 0): Lease => ({ jobId: `job-${n}`, retryCount, eventSeq: String(n) });
const consumer = (window: number) => new Consumer(subscription, "c", window, { deliver: () => {} });

describe("Consumer", () => {
  it("offers only the free part of its window", () => {
    const c = consumer(3);
    expect(c.free).toBe(3);
    c.hold(lease(1), 0);
    c.hold(lease(2), 0);
    expect(c.free).toBe(1);
    c.setWindow(1);
    expect(c.free).toBe(0);
  });

  it("tells the attempts of one event apart in its ack ids", () => {
    const c = consumer(10);
    expect(c.hold(lease(1, 0), 0)).not.toBe(c.hold(lease(1, 1), 0));
  });

  it("claims held ids once; other ids are unknown, lapsed and settled ones stale", () => {
    const c = consumer(10);
    const held = c.hold(lease(1), 0);
    const lapsing = c.hold(lease(2), 0);
    c.hold(lease(3), 9_000);
    expect(c.expireLapsed(10_000)).toBe(2);
    expect(c.claim([lapsing, "nope"])).toEqual([
      { ackId: lapsing, status: "stale" },
      { ackId: "nope", status: "unknown" },
    ]);
    expect(c.claim([held])).toEqual([{ ackId: held, status: "stale" }]);
    expect(c.outstanding).toBe(1);
  });

  it("claims an id repeated in one settle once, and answers a settled id stale", () => {
    const c = consumer(10);
    const id = c.hold(lease(1), 0);
    expect(c.claim([id, id])).toEqual([
      { ackId: id, lease: lease(1) },
      { ackId: id, status: "stale" },
    ]);
    expect(c.claim([id])).toEqual([{ ackId: id, status: "stale" }]);
    expect(c.peek([id]).others.get(id)).toBe("stale");
  });

  it("hands back everything it holds when closed, and takes nothing more", () => {
    const c = consumer(10);
    c.hold(lease(1), 0);
    c.hold(lease(2), 0);
    expect(c.close().map((l) => l.jobId)).toEqual(["job-1", "job-2"]);
    expect(c.free).toBe(0);
    expect(c.outstanding).toBe(0);
  });
});
