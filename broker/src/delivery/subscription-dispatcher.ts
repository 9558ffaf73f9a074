// Moves one subscription's pending deliveries onto this broker's streams for it. It leases only
// as many as the streams have free window, so a stream never holds more unsettled deliveries
// than its consumer allowed. It runs when woken (publish, settle, new stream, NOTIFY, fallback poll)
// and drains until the queue is empty or every window is full.
import type { Consumer, OutboundDelivery } from "./consumer.ts";
import type { FailureOutcome, Lease, Subscription } from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { DeliveryQueue, EventStore } from "./ports.ts";

const MAX_BATCH = 500;

export class SubscriptionDispatcher {
  readonly consumers = new Set<Consumer>();
  /** The dispatch pass in progress, if any. */
  private current: Promise<void> | undefined;
  private wokenWhileRunning = false;
  private rotation = 0;

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

  wake(): void {
    if (this.current) {
      this.wokenWhileRunning = true;
      return;
    }
    this.current = this.run().finally(() => {
      this.current = undefined;
    });
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

  private async dispatchUntilDrained(): Promise<void> {
    for (;;) {
      const wanted = Math.min(this.free, MAX_BATCH);
      if (wanted === 0) return;
      const leases = await this.queue.lease(this.subscription.queue, wanted);
      if (leases.length === 0) return;
      await this.hand(leases);
      if (leases.length < wanted) return;
    }
  }

  private async hand(leases: Lease[]): Promise<void> {
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
    const now = Date.now();
    const consumers = [...this.consumers];
    const start = this.rotation++ % Math.max(1, consumers.length);
    const ordered = [...consumers.slice(start), ...consumers.slice(0, start)];
    const sub = this.subscription;
    const unplaced: Lease[] = [];
    const missing: Lease[] = [];
    const exhausted: Lease[] = [];
    let next = 0;
    for (const consumer of ordered) {
      const batch: OutboundDelivery[] = [];
      while (next < leases.length && consumer.free > 0) {
        const lease = leases[next++] as Lease;
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
        const attempt = lease.retryCount + 1;
        batch.push({
          ackId: consumer.hold({ ...lease, publishedAt: event.publishedAt }, now),
          attempt,
          event,
        });
        this.observer.delivered(this.subscription.name, attempt);
      }
      if (batch.length > 0) consumer.sink.deliver(batch);
    }
    unplaced.push(...leases.slice(next));
    // Streams that closed while we were leasing leave deliveries nobody can take: back they go.
    const outcomes: FailureOutcome[] = [
      ...unplaced.map((lease) => ({
        lease,
        retryAfterSeconds: 0,
        error: "the stream closed before delivery",
      })),
      ...exhausted.map((lease) => ({ lease, deadLetter: "max_attempts" as const, error: "lease expired" })),
    ];
    if (outcomes.length > 0) {
      const settled = await this.queue.fail(sub, outcomes);
      const dead = exhausted.filter((lease) => settled.has(lease.jobId)).length;
      if (dead > 0) this.observer.deadLettered(sub.name, "max_attempts", dead);
    }
    // An event row can only be missing if it was removed by hand; there is nothing to deliver.
    if (missing.length > 0) await this.queue.complete(this.subscription, missing);
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
