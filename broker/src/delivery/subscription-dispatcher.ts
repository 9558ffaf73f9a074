// Moves one subscription's deliveries onto this broker's streams for it. It leases only as many
// as the streams have free window, so a stream never holds more unsettled deliveries than its
// consumer allowed. It runs when woken (publish, settle, new stream, NOTIFY, fallback poll) and
// drains both of its sources until they are empty or every window is full:
//   - the cursor: the topic's events after the subscription's cursor, leased in seq order (one
//     read, then one statement that moves the cursor and writes the jobs: cursor-routing.ts);
//   - the queue: pg-boss jobs that have a schedule of their own (retries, delayed events, an
//     ordered key's later events, redrives, leases put back).
// Each source's state is explicit: "drained" when its last read came back short and no work was
// announced for it since (a freed window then costs no read), else "maybe_more".
// A third way in, while both sources are drained: publishes of the topic on this broker lease their
// new events for it in their own transaction (publish-handoffs.ts), and the dispatcher hands them
// out when they commit.
// What the dispatcher is doing is one explicit mode, changed only by the transitions below:
//   idle         -> dispatching (a wake that needs a read), handing_off (a publish claims room)
//   dispatching  a pass runs; a wake meanwhile runs it once more. -> idle when it ends
//   handing_off  publishes with its claims are in flight, holding `reserved` of the windows; a wake
//                that needs a read is kept (`passWanted`, and no more claims are made), a publish's
//                "events up to" is kept (`newest`). -> idle, or dispatching, when the last settles
// It also keeps the cursor's position as it last saw it: a publish's wake for events up to a
// position it has passed (its own hand-off took them) then costs no read.
// Byte windows: how many events fit is only known once they are loaded, so the dispatcher leases
// by the largest event of its last batch; events that then find no room wait here, leased, and
// go out first when room frees (they are not charged an attempt for it).
import { v7 as uuidv7 } from "uuid";
import type { Consumer, OutboundDelivery } from "./consumer.ts";
import { planCursorLease } from "./cursor-routing.ts";
import { eventBytes } from "./event-size.ts";
import type {
  FailureOutcome,
  HandedDelivery,
  HandoffAsk,
  Lease,
  StoredEvent,
  Subscription,
} from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { DeliveryQueue, EventStore } from "./ports.ts";
import { PUBLISH_LIMITS } from "./publishing.ts";

const MAX_BATCH = 500;

/** A leased delivery with its event, ready to hand to a stream. */
export interface Ready {
  lease: Lease;
  event: StoredEvent;
  bytes: number;
  /** When the queue leased it (ms since epoch): the lease runs out an ack deadline later. */
  leasedAt: number;
}

/**
 * Why a dispatcher is woken. "events": new events on the topic (a publish, a NOTIFY). "work": its
 * queue may hold jobs it has not seen too (a delivery put back, a retry falling due, a redrive,
 * the fallback poll). "room": a stream's window freed (an ack), which only matters if a source
 * was left with more than the windows took.
 */
export type WakeCause = "events" | "work" | "room";

type SourceState = "drained" | "maybe_more";

/** Room a publish claimed for its events (publish-handoffs.ts); settled by takeHandoff. */
export interface HandoffClaim extends HandoffAsk {
  claimedAt: number;
}

type Mode =
  | { name: "idle" }
  | { name: "dispatching"; pass: Promise<void>; again: boolean }
  | {
      name: "handing_off";
      claims: number;
      reserved: number;
      passWanted: boolean;
      newest: bigint | undefined;
      settled: Promise<void>;
      settle: () => void;
    };

export interface DispatcherHooks {
  observer: DeliveryObserver;
  onError: (error: unknown, subscription: Subscription) => void;
  /** Whether the subscription's filter takes the event. */
  accepts: (subscription: Subscription, event: StoredEvent) => boolean;
  /** A delayed event was scheduled: wake the dispatcher when it falls due. */
  wakeAt: (subscription: string, atMs: number) => void;
}

export class SubscriptionDispatcher {
  readonly consumers = new Set<Consumer>();
  /** See the header. */
  private mode: Mode = { name: "idle" };
  /** The cursor's position as this dispatcher last saw or left it; unknown after a "work" wake (a seek). */
  private position: bigint | undefined;
  /** What the dispatcher knows of each source (see the header). */
  private readonly sources: { cursor: SourceState; queue: SourceState } = {
    cursor: "maybe_more",
    queue: "maybe_more",
  };
  /** Counts wakes per source, so a read that started before one does not mark it drained. */
  private readonly announced = { cursor: 0, queue: 0 };
  private rotation = 0;
  /** Leased deliveries no stream had room for yet (byte windows); handed out before new ones. */
  private waiting: Ready[] = [];
  /** The largest event of the last batch: how the next lease guesses what fits a byte window. */
  private typicalEventBytes: number = PUBLISH_LIMITS.maxEventBytes;

  constructor(
    /** Replaced when the subscription's policy changes. */
    public subscription: Subscription,
    private readonly queue: DeliveryQueue,
    private readonly events: EventStore,
    private readonly hooks: DispatcherHooks,
  ) {}

  get free(): number {
    let free = 0;
    for (const consumer of this.consumers) free += consumer.free;
    return free;
  }

  /** Whether deliveries leased earlier wait here for a stream with room. */
  get holdsWaiting(): boolean {
    return this.waiting.length > 0;
  }

  /**
   * Wakes the dispatcher. `newest`, with "events", is the newest event the wake announces (a
   * publish here): events the cursor has passed need no read.
   */
  wake(cause: WakeCause = "work", newest?: string): void {
    if (cause === "events" && newest !== undefined) {
      const upTo = BigInt(newest);
      if (this.mode.name === "handing_off") {
        // Its own claims may be taking these events: decided when they settle.
        if (this.mode.newest === undefined || upTo > this.mode.newest) this.mode.newest = upTo;
        return;
      }
      if (this.position !== undefined && upTo <= this.position) return;
    }
    // A "work" wake may follow a seek, which can move the cursor back.
    if (cause === "work") this.position = undefined;
    if (cause === "events" || cause === "work") this.announce("cursor");
    if (cause === "work") this.announce("queue");
    if (
      cause === "room" &&
      this.sources.cursor === "drained" &&
      this.sources.queue === "drained" &&
      this.waiting.length === 0
    ) {
      // Room freed, but neither source had anything left when last asked: nothing to read.
      return;
    }
    this.wantPass();
  }

  private wantPass(): void {
    switch (this.mode.name) {
      case "idle":
        this.startPass();
        return;
      case "dispatching":
        this.mode.again = true;
        return;
      case "handing_off":
        this.mode.passWanted = true;
        return;
    }
  }

  private startPass(): void {
    const mode: Mode & { name: "dispatching" } = {
      name: "dispatching",
      pass: Promise.resolve(),
      again: false,
    };
    this.mode = mode;
    mode.pass = (async () => {
      try {
        do {
          mode.again = false;
          await this.dispatchUntilDrained();
        } while (mode.again);
      } catch (error) {
        this.hooks.onError(error, this.subscription);
      } finally {
        this.mode = { name: "idle" };
      }
    })();
  }

  /**
   * Claims room for the next events of the topic, for a publish to lease them here (see the
   * header), or undefined when the dispatcher cannot take them that way now.
   */
  claimHandoff(): HandoffClaim | undefined {
    const sub = this.subscription;
    if (sub.filter || sub.ordering || sub.ackedRetentionSeconds !== 0) return undefined;
    if (this.sources.cursor !== "drained" || this.sources.queue !== "drained" || this.waiting.length > 0) {
      return undefined;
    }
    if (this.mode.name === "dispatching") return undefined;
    if (this.mode.name === "handing_off" && this.mode.passWanted) return undefined;
    const reserved = this.mode.name === "handing_off" ? this.mode.reserved : 0;
    const room = Math.min(this.capacity() - reserved, MAX_BATCH);
    if (room <= 0) return undefined;
    if (this.mode.name === "idle") {
      let settle = () => {};
      const settled = new Promise<void>((resolve) => {
        settle = resolve;
      });
      this.mode = {
        name: "handing_off",
        claims: 0,
        reserved: 0,
        passWanted: false,
        newest: undefined,
        settled,
        settle,
      };
    }
    this.mode.claims++;
    this.mode.reserved += room;
    return { queue: sub.queue, room, claimedAt: Date.now() };
  }

  /** Settles a claim: hands out what its publish leased here (nothing when it took nothing). */
  takeHandoff(claim: HandoffClaim, handed: HandedDelivery[] | undefined): void {
    if (handed && handed.length > 0) {
      this.position = BigInt((handed.at(-1) as HandedDelivery).lease.eventSeq);
      const ready = handed.map(
        ({ lease, event }): Ready => ({
          lease: { ...lease, publishedAt: event.publishedAt },
          event,
          bytes: eventBytes(event),
          // Before the publish was sent: its batch's lease cannot have started earlier.
          leasedAt: claim.claimedAt,
        }),
      );
      this.typicalEventBytes = Math.max(...ready.map((r) => r.bytes));
      this.hooks.observer.handedOff(this.subscription.name, ready.length);
      // Synchronous unless every stream closed meanwhile (then they go back to the queue).
      this.hand(ready).catch((error: unknown) => this.hooks.onError(error, this.subscription));
    }
    const mode = this.mode;
    if (mode.name !== "handing_off") return;
    mode.claims--;
    mode.reserved -= claim.room;
    if (mode.claims > 0) return;
    this.mode = { name: "idle" };
    mode.settle();
    const missed = mode.newest !== undefined && (this.position === undefined || mode.newest > this.position);
    if (missed) this.announce("cursor");
    if (missed || mode.passWanted) this.startPass();
  }

  private announce(source: "cursor" | "queue"): void {
    this.sources[source] = "maybe_more";
    this.announced[source]++;
  }

  /** Resolves when no dispatch pass or hand-off is in progress. */
  async idle(): Promise<void> {
    for (;;) {
      const mode = this.mode;
      if (mode.name === "dispatching") await mode.pass;
      else if (mode.name === "handing_off") await mode.settled;
      else return;
    }
  }

  /**
   * Hands back what waits here for a stream (the last stream of the subscription on this broker
   * closed): it goes back to the queue like any delivery whose stream closed.
   */
  async releaseWaiting(): Promise<void> {
    await this.idle();
    const waiting = this.waiting;
    this.waiting = [];
    await this.putBack(waiting.map((r) => r.lease));
  }

  private async dispatchUntilDrained(): Promise<void> {
    for (;;) {
      if (this.waiting.length > 0) {
        await this.hand([]);
        if (this.waiting.length > 0) return;
      }
      // The queue first: what it holds (retries, put-back leases) is older than the cursor's events.
      let more = false;
      if (this.sources.queue === "maybe_more") {
        const room = Math.min(this.capacity(), MAX_BATCH);
        if (room === 0) return;
        more = await this.leaseFromQueue(room);
      }
      if (this.sources.cursor === "maybe_more") {
        const room = Math.min(this.capacity(), MAX_BATCH);
        if (room === 0) return;
        more = (await this.leaseFromCursor(room)) || more;
      }
      if (!more) return;
    }
  }

  /** Leases due jobs from the queue; true when it came back full (there may be more). */
  private async leaseFromQueue(wanted: number): Promise<boolean> {
    const leasedAt = Date.now();
    const announcedBefore = this.announced.queue;
    const asked = performance.now();
    const leases = await this.queue.lease(this.subscription.queue, wanted);
    this.hooks.observer.fetched(this.subscription.name, (performance.now() - asked) / 1000);
    const drained = leases.length < wanted;
    if (drained && this.announced.queue === announcedBefore) this.sources.queue = "drained";
    if (leases.length > 0) await this.hand(await this.load(leases, leasedAt));
    return !drained;
  }

  /**
   * Leases from the cursor: reads the events after it, decides each (cursor-routing.ts), and moves
   * the cursor writing the jobs in one statement. True when there may be more after it.
   */
  private async leaseFromCursor(room: number): Promise<boolean> {
    const sub = this.subscription;
    const announcedBefore = this.announced.cursor;
    const asked = performance.now();
    // A filter may skip most events: read a whole batch then, not just what the window takes.
    const limit = sub.filter ? MAX_BATCH : room;
    const read = await this.queue.readCursor(sub.queue, limit);
    const markDrained = () => {
      if (this.announced.cursor === announcedBefore) this.sources.cursor = "drained";
    };
    if (read) this.position = BigInt(read.position);
    if (!read || read.events.length === 0) {
      markDrained();
      return false;
    }
    const now = Date.now();
    const plan = planCursorLease(sub, read.events, room, now, this.hooks.accepts, uuidv7);
    if (!plan) return false;
    const leasedAt = Date.now();
    const leases = await this.queue.advanceCursor(
      sub.queue,
      read.position,
      plan.to,
      plan.deliveries,
      plan.holding,
    );
    this.hooks.observer.fetched(sub.name, (performance.now() - asked) / 1000);
    // Another broker moved the cursor first (or a seek did): read again from where it is now.
    if (!leases) return true;
    this.position = BigInt(plan.to);
    if (plan.dueNow > 0) this.announce("queue");
    if (plan.earliestDueMs !== undefined) this.hooks.wakeAt(sub.name, plan.earliestDueMs);
    const ready: Ready[] = [];
    for (const event of plan.leased) {
      const lease = leases.get(event.seq);
      // Never missing (the statement held each in its batch or a job); if it were, the event is
      // not handed out here, and nothing else holds it.
      if (!lease) continue;
      ready.push({
        lease: { ...lease, publishedAt: event.publishedAt },
        event,
        bytes: eventBytes(event),
        leasedAt,
      });
    }
    if (ready.length > 0) {
      this.typicalEventBytes = Math.max(...ready.map((r) => r.bytes));
      await this.hand(ready);
    }
    const lastRead = read.events.at(-1)?.seq;
    const full = read.events.length === limit || plan.to !== lastRead;
    if (!full) markDrained();
    return full;
  }

  /** What the streams have room for: by free window, and by free bytes over the typical size. */
  private capacity(): number {
    let wanted = 0;
    for (const consumer of this.consumers) {
      const free = consumer.free;
      if (free === 0) continue;
      const freeBytes = consumer.freeBytes;
      // Under its byte window a stream takes one more event whatever its size: hence the ceiling.
      const byBytes = Number.isFinite(freeBytes)
        ? Math.ceil(freeBytes / Math.max(1, this.typicalEventBytes))
        : free;
      wanted += Math.min(free, byBytes);
    }
    return wanted;
  }

  /**
   * Loads the leased deliveries' events. A delivery whose event row is gone is completed; one
   * already past its attempts is dead-lettered; the rest are ready to hand out.
   */
  private async load(leases: Lease[], leasedAt: number): Promise<Ready[]> {
    let events: Awaited<ReturnType<EventStore["loadEvents"]>>;
    try {
      events = await this.events.loadEvents(
        this.subscription.topic,
        leases.map((l) => l.eventSeq),
      );
    } catch (error) {
      // Leased but not handed out: put them back now rather than when their leases lapse.
      await releaseLeases(
        this.queue,
        this.subscription,
        leases,
        "dispatch failed: the events could not be loaded",
      );
      throw error;
    }
    const sub = this.subscription;
    const ready: Ready[] = [];
    const missing: Lease[] = [];
    const exhausted: Lease[] = [];
    for (const lease of leases) {
      const event = events.get(lease.eventSeq);
      if (!event) {
        missing.push(lease);
        continue;
      }
      // Already past its attempts (a lease pg-boss's own expiry backstop put back): dead-letter it.
      if (sub.deadLettering && lease.retryCount + 1 > sub.maxDeliveryAttempts) {
        exhausted.push(lease);
        continue;
      }
      ready.push({
        lease: { ...lease, publishedAt: event.publishedAt },
        event,
        bytes: eventBytes(event),
        leasedAt,
      });
    }
    if (ready.length > 0) this.typicalEventBytes = Math.max(...ready.map((r) => r.bytes));
    if (exhausted.length > 0) {
      const settled = await this.queue.fail(
        sub,
        exhausted.map((lease) => ({ lease, deadLetter: "max_attempts" as const, error: "lease expired" })),
      );
      const dead = exhausted.filter((lease) => settled.has(lease.jobId)).length;
      if (dead > 0) this.hooks.observer.deadLettered(sub.name, "max_attempts", dead);
    }
    // An event row can only be missing if it was removed by hand; there is nothing to deliver.
    if (missing.length > 0) await this.queue.complete(this.subscription, missing);
    return ready;
  }

  /** Hands what waits and then `fresh` to the streams, round-robin, within their windows. */
  private async hand(fresh: Ready[]): Promise<void> {
    const now = Date.now();
    // One that waited so long that its lease is about to run out is left to lapse: the lease sweep
    // puts it back by the retry rule, as for a consumer that held it that long.
    const deadlineMs = this.subscription.ackDeadlineSeconds * 1000;
    const ready = [...this.waiting.filter((r) => now - r.leasedAt < deadlineMs - 1000), ...fresh];
    this.waiting = [];
    const consumers = [...this.consumers];
    const start = this.rotation++ % Math.max(1, consumers.length);
    const ordered = [...consumers.slice(start), ...consumers.slice(0, start)];
    let next = 0;
    for (const consumer of ordered) {
      const batch: OutboundDelivery[] = [];
      let redeliveries = 0;
      while (next < ready.length && consumer.free > 0) {
        const { lease, event, bytes, leasedAt } = ready[next++] as Ready;
        const attempt = lease.retryCount + 1;
        if (attempt > 1) redeliveries++;
        batch.push({ ackId: consumer.hold(lease, bytes, leasedAt), attempt, event });
      }
      if (batch.length === 0) continue;
      this.hooks.observer.delivered(this.subscription.name, batch.length, redeliveries);
      consumer.sink.deliver(batch);
    }
    const left = ready.slice(next);
    if (ordered.some((c) => !c.isClosed)) {
      this.waiting = left;
      return;
    }
    // Streams that closed while we were leasing leave deliveries nobody can take: back they go.
    await this.putBack(left.map((r) => r.lease));
  }

  private async putBack(leases: Lease[]): Promise<void> {
    if (leases.length === 0) return;
    const outcomes: FailureOutcome[] = leases.map((lease) => ({
      lease,
      retryAfterSeconds: 0,
      error: "the stream closed before delivery",
    }));
    await this.queue.fail(this.subscription, outcomes);
  }
}

/** Puts leases back for another delivery at once (best effort: if the database is down they lapse). */
export async function releaseLeases(
  queue: DeliveryQueue,
  subscription: Subscription,
  leases: Lease[],
  error: string,
): Promise<void> {
  await queue
    .fail(
      subscription,
      leases.map((lease) => ({ lease, retryAfterSeconds: 0, error })),
    )
    .catch(() => {});
}
