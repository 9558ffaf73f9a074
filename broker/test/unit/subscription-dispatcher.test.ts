// The dispatcher's states (pure logic, with an in-memory queue and cursor): when it reads each
// source, what a lease from the cursor makes of each event, and how it recovers from a race.
import { describe, expect, it } from "vitest";
import { Consumer, type OutboundDelivery } from "../../src/delivery/consumer.ts";
import type {
  FailureOutcome,
  Lease,
  LeaseHolding,
  ScheduledDelivery,
  StoredEvent,
  Subscription,
} from "../../src/delivery/model.ts";
import type { DeliveryObserver } from "../../src/delivery/observer.ts";
import type { DeliveryQueue, EventStore } from "../../src/delivery/ports.ts";
import { SubscriptionDispatcher } from "../../src/delivery/subscription-dispatcher.ts";
import { testSubscription } from "../support/subscription.ts";

const event = (seq: string, more: Partial<StoredEvent> = {}): StoredEvent => ({
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
  ...more,
});
const lease = (seq: number): Lease => ({ jobId: `job-${seq}`, retryCount: 0, eventSeq: String(seq) });

/** A queue and a cursor in memory: what is pending, and every call made to them. */
class MemoryQueue {
  pending: Lease[] = [];
  topic: StoredEvent[] = [];
  position = "0";
  leaseCalls: number[] = [];
  cursorReads: number[] = [];
  written: ScheduledDelivery[] = [];
  /** How each advance asked the leased events to be held. */
  holdings: LeaseHolding[] = [];
  failed: FailureOutcome[] = [];
  /** Runs once before the next advance: another broker moving the cursor first. */
  beforeAdvance: (() => void) | undefined;
  async lease(_queue: string, limit: number): Promise<Lease[]> {
    this.leaseCalls.push(limit);
    return this.pending.splice(0, limit);
  }
  async readCursor(_queue: string, limit: number) {
    this.cursorReads.push(limit);
    const events = this.topic.filter((e) => BigInt(e.seq) > BigInt(this.position)).slice(0, limit);
    return { position: this.position, events };
  }
  async advanceCursor(
    _queue: string,
    from: string,
    to: string,
    deliveries: ScheduledDelivery[],
    holding: LeaseHolding,
  ) {
    this.beforeAdvance?.();
    this.beforeAdvance = undefined;
    if (this.position !== from) return undefined;
    this.position = to;
    this.written.push(...deliveries);
    this.holdings.push(holding);
    return new Map(
      deliveries
        .filter((d) => d.leased)
        .map((d): [string, Lease] => [d.seq, { jobId: `job-${d.seq}`, retryCount: 0, eventSeq: d.seq }]),
    );
  }
  async fail(_sub: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    this.failed.push(...outcomes);
    return new Set(outcomes.map((o) => o.lease.jobId));
  }
  async complete(_sub: Subscription, leases: Lease[]): Promise<Set<string>> {
    return new Set(leases.map((l) => l.jobId));
  }
}

function setUp(window: number, subscription: Subscription = testSubscription) {
  const queue = new MemoryQueue();
  const events: EventStore = {
    publish: () => Promise.reject(new Error("not used")),
    loadEvents: async (_topic, seqs) => new Map(seqs.map((seq) => [seq, event(seq)])),
  };
  const observer = {
    delivered: () => {},
    handedOff: () => {},
    fetched: () => {},
    deadLettered: () => {},
  } as unknown as DeliveryObserver;
  const errors: unknown[] = [];
  const wakeAts: number[] = [];
  const dispatcher = new SubscriptionDispatcher(subscription, queue as unknown as DeliveryQueue, events, {
    observer,
    onError: (error) => errors.push(error),
    accepts: (sub, e) => !sub.filter || e.attributes.kind === "keep",
    wakeAt: (_name, atMs) => wakeAts.push(atMs),
  });
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
  return { queue, dispatcher, consumer, delivered, errors, wakeAts };
}

const seqs = (delivered: OutboundDelivery[]) => delivered.map((d) => d.event.seq);

describe("SubscriptionDispatcher", () => {
  it("leases from the cursor in seq order within the window, and reads again only when it may hold more", async () => {
    const { queue, dispatcher, consumer, delivered } = setUp(2);
    queue.topic = ["1", "2", "3"].map((s) => event(s));
    dispatcher.wake("events");
    await dispatcher.idle();
    expect(seqs(delivered)).toEqual(["1", "2"]);
    expect(queue.position).toBe("2");
    // The window is full and an event is left: an ack's room must lease it.
    consumer.claim([delivered[0]?.ackId as string]);
    dispatcher.wake("room");
    await dispatcher.idle();
    expect(seqs(delivered)).toEqual(["1", "2", "3"]);
    // That read got all it asked for, so the next room reads again and finds the cursor at the head.
    consumer.claim([delivered[1]?.ackId as string]);
    dispatcher.wake("room");
    await dispatcher.idle();
    const reads = queue.cursorReads.length;
    // Both sources drained: another ack's room reads nothing.
    consumer.claim([delivered[2]?.ackId as string]);
    dispatcher.wake("room");
    await dispatcher.idle();
    expect(queue.cursorReads).toHaveLength(reads);
    // New events are read whatever the last read found.
    queue.topic.push(event("4"));
    dispatcher.wake("events");
    await dispatcher.idle();
    expect(seqs(delivered)).toEqual(["1", "2", "3", "4"]);
    // "events" never asks the job queue; "work" does.
    const fetches = queue.leaseCalls.length;
    queue.topic.push(event("5"));
    dispatcher.wake("events");
    await dispatcher.idle();
    expect(queue.leaseCalls).toHaveLength(fetches);
  });

  it("takes the job queue (retries, put-back leases) before the cursor", async () => {
    const { queue, dispatcher, delivered } = setUp(3);
    queue.pending = [lease(1)];
    queue.topic = [event("2"), event("3")];
    dispatcher.wake("work");
    await dispatcher.idle();
    expect(seqs(delivered)).toEqual(["1", "2", "3"]);
  });

  it("moves the cursor past what the filter skips, without charging the window", async () => {
    const { queue, dispatcher, delivered } = setUp(1, { ...testSubscription, filter: "kind = 'keep'" });
    queue.topic = [
      event("1", { attributes: { kind: "skip" } }),
      event("2", { attributes: { kind: "skip" } }),
      event("3", { attributes: { kind: "keep" } }),
      event("4", { attributes: { kind: "skip" } }),
    ];
    dispatcher.wake("events");
    await dispatcher.idle();
    expect(seqs(delivered)).toEqual(["3"]);
    // The window is full after 3, but 4 needs no window: the filter skips it and the cursor passes it.
    expect(queue.position).toBe("4");
    expect(queue.written.map((d) => d.seq)).toEqual(["3"]);
  });

  it("schedules a delayed event as a job and asks to be woken when it falls due", async () => {
    const { queue, dispatcher, delivered, wakeAts } = setUp(5);
    const due = new Date(Date.now() + 60_000);
    queue.topic = [event("1", { deliverAfter: due }), event("2")];
    dispatcher.wake("events");
    await dispatcher.idle();
    expect(seqs(delivered)).toEqual(["2"]);
    expect(queue.written).toEqual([
      { seq: "1", leased: false, startAfter: due },
      { seq: "2", leased: true },
    ]);
    expect(wakeAts).toEqual([due.getTime()]);
  });

  it("on an ordered subscription, queues every event as a job behind its key, then fetches", async () => {
    const { queue, dispatcher } = setUp(5, { ...testSubscription, ordering: true });
    queue.topic = [event("1", { orderingKey: "k" }), event("2")];
    dispatcher.wake("events");
    await dispatcher.idle();
    expect(queue.written.map(({ seq, leased, key }) => ({ seq, leased, key }))).toEqual([
      { seq: "1", leased: false, key: "k" },
      { seq: "2", leased: false, key: "~2" },
    ]);
    // The ids rise in seq order (pg-boss orders a key's jobs by them within one statement).
    const [a, b] = queue.written.map((d) => d.id as string);
    expect(a && b && a < b).toBe(true);
    // They are due now, so the queue is asked for them in the same pass.
    expect(queue.leaseCalls.length).toBeGreaterThan(0);
  });

  it("reads again when another broker moved the cursor first, and never leases an event twice", async () => {
    const { queue, dispatcher, delivered } = setUp(10);
    queue.topic = ["1", "2", "3"].map((s) => event(s));
    queue.beforeAdvance = () => {
      queue.position = "2";
    };
    dispatcher.wake("events");
    await dispatcher.idle();
    expect(seqs(delivered)).toEqual(["3"]);
    expect(queue.position).toBe("3");
  });
  it("holds what it leases from the cursor as one batch, or as jobs when acked deliveries are kept", async () => {
    const batched = setUp(10);
    batched.queue.topic = ["1", "2"].map((s) => event(s));
    batched.dispatcher.wake("events");
    await batched.dispatcher.idle();
    expect(batched.queue.holdings).toEqual(["batch"]);
    const keeping = setUp(10, { ...testSubscription, ackedRetentionSeconds: 60 });
    keeping.queue.topic = ["1", "2"].map((s) => event(s));
    keeping.dispatcher.wake("events");
    await keeping.dispatcher.idle();
    expect(keeping.queue.holdings).toEqual(["jobs"]);
    expect(seqs(keeping.delivered)).toEqual(["1", "2"]);
  });

  describe("publish hand-offs", () => {
    /** What a publish statement leases for a claim: a batch of the topic's new events. */
    const handed = (...seqList: string[]) =>
      seqList.map((seq, index) => ({
        lease: {
          jobId: `b/${index}`,
          retryCount: 0,
          eventSeq: seq,
          slot: { batch: "b", index, size: seqList.length },
        },
        event: event(seq),
      }));

    /** A dispatcher that has read its cursor to the head (both sources drained). */
    async function drained(window: number, subscription: Subscription = testSubscription) {
      const setup = setUp(window, subscription);
      setup.queue.topic = [event("1")];
      setup.dispatcher.wake("work");
      await setup.dispatcher.idle();
      return setup;
    }

    it("claims free room when drained, hands out what the publish leased, and a wake for those events reads nothing", async () => {
      const { queue, dispatcher, delivered } = await drained(10);
      const reads = queue.cursorReads.length;
      const claim = dispatcher.claimHandoff();
      expect(claim).toMatchObject({ queue: "q", room: 9 });
      // The claim holds all the free room: a second publish in flight finds none left.
      expect(dispatcher.claimHandoff()).toBeUndefined();
      dispatcher.takeHandoff(claim as NonNullable<typeof claim>, handed("2", "3"));
      // The publish's own wake names events the hand-off took: no read.
      dispatcher.wake("events", "3");
      await dispatcher.idle();
      expect(seqs(delivered)).toEqual(["1", "2", "3"]);
      expect(queue.cursorReads).toHaveLength(reads);
    });

    it("makes no claim with a source that may hold more, while a pass runs, or on filtered, ordered or retaining subscriptions", async () => {
      const fresh = setUp(10);
      expect(fresh.dispatcher.claimHandoff()).toBeUndefined();
      for (const sub of [
        { ...testSubscription, filter: "kind = 'keep'" },
        { ...testSubscription, ordering: true },
        { ...testSubscription, ackedRetentionSeconds: 60 },
      ]) {
        expect((await drained(10, sub)).dispatcher.claimHandoff()).toBeUndefined();
      }
      const busy = await drained(10);
      busy.queue.topic.push(event("2"));
      busy.dispatcher.wake("events");
      expect(busy.dispatcher.claimHandoff()).toBeUndefined();
      await busy.dispatcher.idle();
      const full = await drained(1);
      expect(full.dispatcher.claimHandoff()).toBeUndefined();
    });

    it("keeps a wake that needs a read until its claims settle, and claims nothing more meanwhile", async () => {
      const { queue, dispatcher, delivered } = await drained(10);
      const claim = dispatcher.claimHandoff() as NonNullable<ReturnType<typeof dispatcher.claimHandoff>>;
      // Another broker's publish: the cursor must be read, but not while the claim is in flight.
      queue.topic.push(event("2"));
      const reads = queue.cursorReads.length;
      dispatcher.wake("events");
      expect(queue.cursorReads).toHaveLength(reads);
      expect(dispatcher.claimHandoff()).toBeUndefined();
      // The publish leased nothing here (the cursor was not at the head): the pass runs now.
      dispatcher.takeHandoff(claim, undefined);
      await dispatcher.idle();
      expect(seqs(delivered)).toEqual(["1", "2"]);
    });

    it("reads after a hand-off that took only part of what its publish stored", async () => {
      const { queue, dispatcher, delivered } = await drained(10);
      const claim = dispatcher.claimHandoff() as NonNullable<ReturnType<typeof dispatcher.claimHandoff>>;
      queue.topic.push(event("2"), event("3"));
      // The publish stored 2 and 3, and leased only 2 here (3 is delayed, say): its wake says 3.
      dispatcher.wake("events", "3");
      queue.position = "2";
      dispatcher.takeHandoff(claim, handed("2"));
      await dispatcher.idle();
      expect(seqs(delivered)).toEqual(["1", "2", "3"]);
    });
  });
});
