// The dispatcher's states (pure logic, with an in-memory queue): when it fetches, and when a
// publish may lease at once for its streams (lease at publish).
import { describe, expect, it } from "vitest";
import { Consumer, type OutboundDelivery } from "../../src/delivery/consumer.ts";
import type { FailureOutcome, Lease, StoredEvent, Subscription } from "../../src/delivery/model.ts";
import type { DeliveryObserver } from "../../src/delivery/observer.ts";
import type { DeliveryQueue, EventStore } from "../../src/delivery/ports.ts";
import { SubscriptionDispatcher } from "../../src/delivery/subscription-dispatcher.ts";
import { testSubscription } from "../support/subscription.ts";

const subscription = testSubscription;

const event = (seq: string): StoredEvent => ({
  seq,
  topic: "t",
  id: `e${seq}`,
  source: "s",
  type: "t",
  subject: "",
  time: undefined,
  attributes: {},
  orderingKey: "",
  dataTypeUrl: "",
  data: new Uint8Array(8),
  deliverAfter: undefined,
  publishedAt: new Date(),
});
const lease = (seq: number): Lease => ({ jobId: `job-${seq}`, retryCount: 0, eventSeq: String(seq) });

/** A queue in memory: what is pending, and every call made to it. */
class MemoryQueue {
  pending: Lease[] = [];
  leaseCalls: number[] = [];
  failed: FailureOutcome[] = [];
  async lease(_queue: string, limit: number): Promise<Lease[]> {
    this.leaseCalls.push(limit);
    return this.pending.splice(0, limit);
  }
  async fail(_sub: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    this.failed.push(...outcomes);
    return new Set(outcomes.map((o) => o.lease.jobId));
  }
  async complete(_sub: Subscription, leases: Lease[]): Promise<Set<string>> {
    return new Set(leases.map((l) => l.jobId));
  }
}

function setUp(window: number) {
  const queue = new MemoryQueue();
  const events: EventStore = {
    publish: () => Promise.reject(new Error("not used")),
    loadEvents: async (seqs) => new Map(seqs.map((seq) => [seq, event(seq)])),
  };
  const observer = {
    delivered: () => {},
    fetched: () => {},
    deadLettered: () => {},
  } as unknown as DeliveryObserver;
  const errors: unknown[] = [];
  const dispatcher = new SubscriptionDispatcher(
    subscription,
    queue as unknown as DeliveryQueue,
    events,
    observer,
    (error) => errors.push(error),
  );
  const delivered: OutboundDelivery[] = [];
  const consumer = new Consumer(
    subscription,
    "c",
    { messages: window, bytes: 0 },
    {
      deliver: (batch) => delivered.push(...batch),
    },
  );
  dispatcher.consumers.add(consumer);
  return { queue, dispatcher, consumer, delivered, errors };
}

describe("SubscriptionDispatcher", () => {
  it("fetches on work, and on room only while the queue may hold more than the windows took", async () => {
    const { queue, dispatcher, consumer, delivered } = setUp(2);
    queue.pending = [lease(1), lease(2), lease(3)];
    dispatcher.wake("work");
    await dispatcher.idle();
    expect(delivered.map((d) => d.event.seq)).toEqual(["1", "2"]);
    // The window is full and one delivery is left: an ack's room must fetch it.
    consumer.claim([delivered[0]?.ackId as string]);
    dispatcher.wake("room");
    await dispatcher.idle();
    expect(delivered.map((d) => d.event.seq)).toEqual(["1", "2", "3"]);
    // That fetch got all it asked for, so the next room asks again, and finds the queue empty.
    consumer.claim([delivered[1]?.ackId as string]);
    dispatcher.wake("room");
    await dispatcher.idle();
    expect(queue.leaseCalls).toEqual([2, 1, 1]);
    // Drained: another ack's room fetches nothing.
    consumer.claim([delivered[2]?.ackId as string]);
    dispatcher.wake("room");
    await dispatcher.idle();
    expect(queue.leaseCalls).toEqual([2, 1, 1]);
    // New work is fetched whatever the last fetch found.
    queue.pending = [lease(4)];
    dispatcher.wake("work");
    await dispatcher.idle();
    expect(delivered.map((d) => d.event.seq)).toEqual(["1", "2", "3", "4"]);
  });

  it("promises window to a publish only after a short lease, and never more than is free", async () => {
    const { queue, dispatcher, delivered } = setUp(5);
    // Nothing fetched yet: the queue may hold older deliveries, which a publish must not overtake.
    expect(dispatcher.reserve(3)).toBeUndefined();
    queue.pending = [lease(1)];
    dispatcher.wake("work");
    await dispatcher.idle();
    const first = dispatcher.reserve(3);
    const second = dispatcher.reserve(3);
    expect([first?.count, second?.count]).toEqual([3, 1]);
    expect(dispatcher.reserve(1)).toBeUndefined();
    // A fetch leaves the reserved window alone: with all of it promised, work fetches nothing.
    const calls = queue.leaseCalls.length;
    dispatcher.wake("work");
    await dispatcher.idle();
    expect(queue.leaseCalls).toHaveLength(calls);
    // The publish committed with two of its three events stored (one was a duplicate).
    first?.complete(
      [2, 3].map((n) => ({ lease: lease(n), event: event(String(n)) })),
      Date.now(),
    );
    second?.complete([], Date.now());
    expect(delivered.map((d) => d.event.seq)).toEqual(["1", "2", "3"]);
    // What the duplicate left unused can be promised again.
    expect(dispatcher.reserve(5)?.count).toBe(2);
  });

  it("counts the window a lease in flight asks for, and stops promising behind a backlog", async () => {
    const { queue, dispatcher, consumer, delivered } = setUp(4);
    dispatcher.wake("work");
    await dispatcher.idle();
    expect(queue.leaseCalls).toEqual([4]);
    // The streams keep up, so the next lease asks for half the window and leaves the other half to
    // publishes; what it asks for is not promised twice.
    let answer: (leases: Lease[]) => void = () => {};
    queue.lease = (_queue: string, limit: number) => {
      queue.leaseCalls.push(limit);
      return new Promise<Lease[]>((resolve) => {
        answer = resolve;
      });
    };
    dispatcher.wake("work");
    expect(queue.leaseCalls.at(-1)).toBe(2);
    const reservation = dispatcher.reserve(4);
    expect(reservation?.count).toBe(2);
    expect(dispatcher.reserve(1)).toBeUndefined();
    reservation?.complete([], Date.now());
    // It comes back full: a backlog, which no publish may overtake while it lasts. The next lease
    // asks for the whole window.
    answer([lease(1), lease(2)]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(queue.leaseCalls).toEqual([4, 2, 2]);
    expect(dispatcher.reserve(1)).toBeUndefined();
    answer([lease(3), lease(4)]);
    await dispatcher.idle();
    expect(delivered).toHaveLength(4);
    // Two acks free room, but the backlog goes first: the next fetch, not a publish, takes it.
    consumer.claim(delivered.slice(0, 2).map((d) => d.ackId));
    expect(consumer.free).toBe(2);
    expect(dispatcher.reserve(1)).toBeUndefined();
  });

  it("puts a reservation's deliveries back when its stream closed before the publish committed", async () => {
    const { queue, dispatcher, consumer, delivered, errors } = setUp(5);
    dispatcher.wake("work");
    await dispatcher.idle();
    const reservation = dispatcher.reserve(1);
    expect(reservation?.count).toBe(1);
    consumer.close();
    reservation?.complete([{ lease: lease(7), event: event("7") }], Date.now());
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(delivered).toHaveLength(0);
    expect(queue.failed.map((o) => [o.lease.jobId, "retryAfterSeconds" in o && o.retryAfterSeconds])).toEqual(
      [["job-7", 0]],
    );
    expect(errors).toEqual([]);
  });
});
