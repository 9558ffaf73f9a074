// How DeliveryService settles when the queue fails (pure logic, with an in-memory queue): a settle
// that meets an unavailable database is run again until it answers, for the longer of the ack
// deadline and the outage window, and never past a drain's deadline; any other failure puts the
// leases back at once; and after an outage, lapsed-lease sweeps wait for the held settles.
import { describe, expect, it } from "vitest";
import type { SettleStatus } from "../../src/delivery/consumer.ts";
import { DeliveryService } from "../../src/delivery/delivery-service.ts";
import { MeshError } from "../../src/delivery/errors.ts";
import type { FailureOutcome, Lease, Subscription } from "../../src/delivery/model.ts";
import type { DeliveryObserver } from "../../src/delivery/observer.ts";
import type { DeliveryQueue, EventStore } from "../../src/delivery/ports.ts";
import { testSubscription } from "../support/subscription.ts";

const unavailable = () =>
  new MeshError("unavailable", "the database is unavailable right now; retry shortly");

/** A queue whose completes fail as `failures` says, one entry per call, then succeed. */
class FailingQueue {
  completeCalls = 0;
  released: FailureOutcome[] = [];
  constructor(private readonly failures: (() => Error) | (() => Error)[]) {}
  async complete(_sub: Subscription, leases: Lease[]): Promise<Set<string>> {
    this.completeCalls++;
    const failure = Array.isArray(this.failures) ? this.failures[this.completeCalls - 1] : this.failures;
    if (failure) throw failure();
    return new Set(leases.map((l) => l.jobId));
  }
  async fail(_sub: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    this.released.push(...outcomes);
    return new Set(outcomes.map((o) => o.lease.jobId));
  }
  async lease(): Promise<Lease[]> {
    return [];
  }
  sweeps = 0;
  async exclusively<T>(work: () => Promise<T>): Promise<T | undefined> {
    this.sweeps++;
    return work();
  }
  async findLapsed(): Promise<{ subscription: string; lease: Lease }[]> {
    return [];
  }
}

function setUp(
  queue: FailingQueue,
  subscription: Subscription = testSubscription,
  outage: { settleOutageRetryMs?: number; sweepGraceAfterOutageMs?: number } = { settleOutageRetryMs: 0 },
) {
  const statuses: SettleStatus[] = [];
  const observer: DeliveryObserver = {
    published: () => {},
    delivered: () => {},
    handedOff: () => {},
    fetched: () => {},
    settled: (_s, status, count) => statuses.push(...Array<SettleStatus>(count).fill(status)),
    acked: () => {},
    deadLettered: () => {},
    consumers: () => {},
  };
  const events: EventStore = {
    publish: () => Promise.reject(new Error("not used")),
    loadEvents: async () => new Map(),
  };
  const service = new DeliveryService(queue as unknown as DeliveryQueue, events, {
    pollIntervalMs: 60_000,
    sweepIntervalMs: 60_000,
    observer,
    loadSubscription: async () => subscription,
    onError: () => {},
    accepts: () => true,
    ...outage,
  });
  const consumer = service.open(subscription, "c", { messages: 10, bytes: 0 }, { deliver: () => {} });
  const ackIds = [1, 2].map((n) =>
    consumer.hold({ jobId: `job-${n}`, retryCount: 0, eventSeq: String(n) }, 0, Date.now()),
  );
  return { service, consumer, ackIds, statuses };
}

describe("DeliveryService settles", () => {
  it("runs an ack again while the database is unavailable, and answers it once the database does", async () => {
    const queue = new FailingQueue([unavailable, unavailable, unavailable]);
    const { service, consumer, ackIds } = setUp(queue);
    const results = await service.ack(consumer, ackIds);
    expect(results.map((r) => r.status)).toEqual(["acked", "acked"]);
    expect(queue.completeCalls).toBe(4);
    expect(queue.released).toEqual([]);
  });

  it("puts the leases back at once when the settle fails for another reason", async () => {
    const queue = new FailingQueue([() => new Error("a statement failed")]);
    const { service, consumer, ackIds } = setUp(queue);
    await expect(service.ack(consumer, ackIds)).rejects.toThrow("a statement failed");
    expect(queue.completeCalls).toBe(1);
    expect(queue.released.map((o) => o.lease.jobId)).toEqual(["job-1", "job-2"]);
  });

  it("goes on through an outage longer than the ack deadline, and the ack lands when it ends", async () => {
    // Waits of 50, 100, 200, 400, 800 and 1,000 ms: the seventh try, about 2.5 s in, succeeds.
    const queue = new FailingQueue(Array<() => Error>(6).fill(unavailable));
    const { service, consumer, ackIds } = setUp(
      queue,
      { ...testSubscription, ackDeadlineSeconds: 1 },
      { settleOutageRetryMs: 10_000 },
    );
    const results = await service.ack(consumer, ackIds);
    expect(results.map((r) => r.status)).toEqual(["acked", "acked"]);
    expect(queue.completeCalls).toBe(7);
    expect(queue.released).toEqual([]);
  });

  it("holds back this broker's lapsed-lease sweeps for a grace after it saw the database unavailable", async () => {
    const queue = new FailingQueue([unavailable]);
    const { service, consumer, ackIds } = setUp(queue, testSubscription, { sweepGraceAfterOutageMs: 300 });
    await service.sweepLapsed();
    expect(queue.sweeps).toBe(1);
    await service.ack(consumer, ackIds);
    await service.sweepLapsed();
    expect(queue.sweeps).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 350));
    await service.sweepLapsed();
    expect(queue.sweeps).toBe(2);
  });

  it("gives up after the ack deadline when that is the longer, and puts the leases back", async () => {
    const queue = new FailingQueue(unavailable);
    const { service, consumer, ackIds } = setUp(queue, { ...testSubscription, ackDeadlineSeconds: 1 });
    await expect(service.ack(consumer, ackIds)).rejects.toThrow(/unavailable/);
    // Waits of 50, 100, 200, 400 ms: the next would pass the one-second deadline (fewer tries on
    // a slow machine, never more).
    expect(queue.completeCalls).toBeGreaterThanOrEqual(2);
    expect(queue.completeCalls).toBeLessThanOrEqual(5);
    expect(queue.released.map((o) => o.lease.jobId)).toEqual(["job-1", "job-2"]);
  });

  it("stops retrying when a drain gives up, long before the ack deadline", async () => {
    const queue = new FailingQueue(unavailable);
    const { service, consumer, ackIds } = setUp(queue, { ...testSubscription, ackDeadlineSeconds: 600 });
    const settling = service.ack(consumer, ackIds);
    const outcome = settling.then(
      () => "settled",
      (error: unknown) => String(error),
    );
    await service.drain(200);
    expect(await outcome).toMatch(/unavailable/);
    expect(queue.completeCalls).toBeLessThan(10);
  });
});
