import { describe, expect, it } from "vitest";
import { Consumer } from "../../src/delivery/consumer.ts";
import type { Lease } from "../../src/delivery/model.ts";
import { testSubscription } from "../support/subscription.ts";

const subscription = testSubscription;
const lease = (n: number, retryCount = 0): Lease => ({ jobId: `job-${n}`, retryCount, eventSeq: String(n) });
const consumer = (messages: number, bytes = 0) =>
  new Consumer(subscription, "c", { messages, bytes }, { deliver: () => {} });

describe("Consumer", () => {
  it("offers only the free part of its window", () => {
    const c = consumer(3);
    expect(c.free).toBe(3);
    c.hold(lease(1), 10, 0);
    c.hold(lease(2), 10, 0);
    expect(c.free).toBe(1);
    c.setWindow(1);
    expect(c.free).toBe(0);
  });

  it("stops taking deliveries once its byte window is reached, and takes one of any size below it", () => {
    const c = consumer(10, 1000);
    expect(c.freeBytes).toBe(1000);
    const first = c.hold(lease(1), 600, 0);
    expect(c.free).toBe(9);
    // 400 bytes left: the next event is taken whatever its size (the window is soft).
    c.hold(lease(2), 5000, 0);
    expect(c.freeBytes).toBe(0);
    expect(c.free).toBe(0);
    c.claim([first]);
    expect(c.free).toBe(0);
    c.setWindow(10, 0);
    expect(c.freeBytes).toBe(Number.POSITIVE_INFINITY);
    expect(c.free).toBe(9);
    c.setWindow(10, 6000);
    expect(c.freeBytes).toBe(1000);
    // A window change without a byte limit keeps the byte limit.
    c.setWindow(5);
    expect(c.maxOutstandingBytes).toBe(6000);
    expect(c.expireLapsed(Number.MAX_SAFE_INTEGER)).toBe(1);
    expect(c.freeBytes).toBe(6000);
  });

  it("tells the attempts of one event apart in its ack ids", () => {
    const c = consumer(10);
    expect(c.hold(lease(1, 0), 10, 0)).not.toBe(c.hold(lease(1, 1), 10, 0));
  });

  it("claims held ids once; other ids are unknown, lapsed and settled ones stale", () => {
    const c = consumer(10);
    const held = c.hold(lease(1), 10, 0);
    const lapsing = c.hold(lease(2), 10, 0);
    c.hold(lease(3), 10, 9_000);
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
    const id = c.hold(lease(1), 10, 0);
    expect(c.claim([id, id])).toEqual([
      { ackId: id, lease: lease(1) },
      { ackId: id, status: "stale" },
    ]);
    expect(c.claim([id])).toEqual([{ ackId: id, status: "stale" }]);
    expect(c.peek([id]).others.get(id)).toBe("stale");
  });

  it("answers every id it handed out and no longer holds stale, and anything else unknown", () => {
    const c = consumer(10);
    const settle = (n: number) => {
      const id = c.hold(lease(n), 1, 0);
      c.claim([id]);
      return id;
    };
    const ids = Array.from({ length: 25_000 }, (_, n) => settle(n));
    expect(new Set(c.claim(ids).map((r) => ("status" in r ? r.status : "held")))).toEqual(new Set(["stale"]));
    // Another stream's ids (one before a reconnect, say), and look-alikes of this stream's.
    const other = consumer(10).hold(lease(1), 1, 0);
    const prefix = (ids[0] as string).slice(0, -1);
    const lookAlikes = [
      other,
      `${prefix}01`,
      `${prefix}1e0`,
      `${prefix}25001`,
      `${prefix}-1`,
      `${prefix}`,
      "1",
    ];
    expect(c.claim(lookAlikes).map((r) => ("status" in r ? r.status : "held"))).toEqual(
      lookAlikes.map(() => "unknown"),
    );
  });

  it("hands back everything it holds when closed, and takes nothing more", () => {
    const c = consumer(10);
    c.hold(lease(1), 10, 0);
    c.hold(lease(2), 10, 0);
    expect(c.close().map((l) => l.jobId)).toEqual(["job-1", "job-2"]);
    expect(c.free).toBe(0);
    expect(c.outstanding).toBe(0);
  });
});
