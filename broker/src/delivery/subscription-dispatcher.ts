// Moves one subscription's pending deliveries onto this broker's streams for it. It leases only
// as many as the streams have free window, so a stream never holds more unsettled deliveries
// than its consumer allowed. It runs when woken (publish, settle, new stream, NOTIFY, fallback poll)
// and drains until the queue is empty or every window is full.
// Byte windows: how many events fit is only known once they are loaded, so the dispatcher leases
// by the largest event of its last batch; events that then find no room wait here, leased, and
// go out first when room frees (they are not charged an attempt for it).
// Lease at publish: while its last lease came back short (its streams keep up), a publish may
// reserve free window here; its statement then inserts those jobs already leased, and
// after the commit they come straight here from the publish, with no fetch and no event load.
import type { Consumer, OutboundDelivery } from "./consumer.ts";
import { eventBytes } from "./event-size.ts";
import type { FailureOutcome, Lease, StoredEvent, Subscription } from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { DeliveryQueue, EventStore, HandoffReservation } from "./ports.ts";
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
 * Why a dispatcher is woken. "work": the queue may hold deliveries it has not seen (a publish, a
 * NOTIFY, a delivery put back, a retry falling due, the fallback poll). "room": a stream's window
 * freed (an ack), which only matters if the queue was left with more than the windows took.
 */
export type WakeCause = "work" | "room";

export class SubscriptionDispatcher {
  readonly consumers = new Set<Consumer>();
  /** The dispatch pass in progress, if any. */
  private current: Promise<void> | undefined;
  private wokenWhileRunning = false;
  /**
   * What the dispatcher knows of its queue: "drained" when its last lease came back short and no
   * work was announced since (an ack then has nothing to fetch for), else "maybe_more".
   */
  private queueState: "drained" | "maybe_more" = "maybe_more";
  /** Counts "work" wakes, so a lease that started before one does not mark the queue drained. */
  private workAnnounced = 0;
  /**
   * How the last lease came back: "full" (the queue had at least what was asked: a backlog, which
   * publishes must not overtake), "short" (it had less), or "none" before the first.
   */
  private lastLease: "none" | "short" | "full" = "none";
  /** Window slots promised to publishes in flight; fetches leave them free. */
  private reserved = 0;
  /** Window taken by the lease in flight and its deliveries not yet handed out. */
  private leasing = 0;
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
    private readonly observer: DeliveryObserver,
    private readonly onError: (error: unknown, subscription: Subscription) => void,
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

  wake(cause: WakeCause = "work"): void {
    if (cause === "work") {
      this.queueState = "maybe_more";
      this.workAnnounced++;
    } else if (this.queueState === "drained" && this.waiting.length === 0) {
      // Room freed, but the queue had nothing left when last asked: no fetch to make.
      return;
    }
    if (this.current) {
      this.wokenWhileRunning = true;
      return;
    }
    this.current = this.run().finally(() => {
      this.current = undefined;
    });
  }

  /**
   * Promises up to `wanted` window slots to a publish about to commit, so that its deliveries can
   * be leased in its own statement and come straight here. Only while nothing waits here and the
   * last lease came back short: a backlog is never overtaken. Work announced since (another
   * publish's jobs, a retry) may be overtaken by a few milliseconds, which an unordered
   * subscription allows; the fetch it started takes its share of the window, and should it come
   * back full, publishes stop reserving until the queue is drained. (Requiring an idle dispatcher
   * and no work announced fed itself at 1,000 single publishes/s: each publish that missed queued
   * work that made the next one miss; 18 % of publish statements did, each costing a fetch and a
   * load.)
   */
  reserve(wanted: number): HandoffReservation | undefined {
    if (this.lastLease !== "short" || this.waiting.length > 0) return undefined;
    const count = Math.min(wanted, this.capacity() - this.reserved - this.leasing);
    if (count <= 0) return undefined;
    this.reserved += count;
    let completed = false;
    return {
      count,
      complete: (deliveries, leasedAt) => {
        if (completed) return;
        completed = true;
        this.reserved -= count;
        const ready = deliveries.map(({ lease, event }) => ({
          lease,
          event,
          bytes: eventBytes(event),
          leasedAt,
        }));
        if (ready.length === 0) return;
        this.typicalEventBytes = Math.max(...ready.map((r) => r.bytes));
        this.hand(ready).catch((error: unknown) => this.onError(error, this.subscription));
      },
    };
  }

  /** Resolves when no dispatch pass is in progress. */
  async idle(): Promise<void> {
    while (this.current) await this.current;
  }

  private async run(): Promise<void> {
    try {
      do {
        this.wokenWhileRunning = false;
        await this.dispatchUntilDrained();
      } while (this.wokenWhileRunning);
    } catch (error) {
      this.onError(error, this.subscription);
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
      const wanted = this.fetchSize();
      if (wanted === 0) return;
      const leasedAt = Date.now();
      const announcedBefore = this.workAnnounced;
      let drained: boolean;
      try {
        this.leasing = wanted;
        const asked = performance.now();
        const leases = await this.queue.lease(this.subscription.queue, wanted);
        this.observer.fetched(this.subscription.name, (performance.now() - asked) / 1000);
        drained = leases.length < wanted;
        this.lastLease = drained ? "short" : "full";
        if (drained && this.workAnnounced === announcedBefore) this.queueState = "drained";
        this.leasing = leases.length;
        if (leases.length > 0) await this.hand(await this.load(leases, leasedAt));
      } finally {
        this.leasing = 0;
      }
      if (drained) return;
    }
  }

  /**
   * As many as the streams have room for, less what publishes have reserved; at most a batch.
   * While the streams keep up (the last lease came back short), half the room at most: the other
   * half stays free for publishes to lease into while this fetch is in flight. Taking it all made
   * every publish miss for as long as a fetch took, and each miss queued work for the next fetch:
   * with 100 subscriptions of 10 streams (bench (d)) fetches shared their group commit 100 at a
   * time, took 300 ms, and a third of the events waited that long. A fetch that comes back with all
   * it asked for marks a backlog, and the next one asks for the whole room.
   */
  private fetchSize(): number {
    const room = this.capacity() - this.reserved;
    const wanted = this.lastLease === "short" ? Math.ceil(room / 2) : room;
    return Math.max(0, Math.min(wanted, MAX_BATCH));
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
      events = await this.events.loadEvents(leases.map((l) => l.eventSeq));
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
      if (dead > 0) this.observer.deadLettered(sub.name, "max_attempts", dead);
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
      while (next < ready.length && consumer.free > 0) {
        const { lease, event, bytes, leasedAt } = ready[next++] as Ready;
        const attempt = lease.retryCount + 1;
        batch.push({ ackId: consumer.hold(lease, bytes, leasedAt), attempt, event });
        this.observer.delivered(this.subscription.name, attempt);
      }
      if (batch.length > 0) consumer.sink.deliver(batch);
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
