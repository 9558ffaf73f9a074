// Streams in, settles out: opens and closes consumers on subscriptions, settles their acks and
// nacks against the queue, and keeps one dispatcher per subscription that has streams here.
import { Consumer, type DeliverySink, type SettleStatus } from "./consumer.ts";
import type { Lease, Subscription } from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { DeliveryQueue, EventStore } from "./ports.ts";
import { SubscriptionDispatcher } from "./subscription-dispatcher.ts";

export interface DeliveryServiceOptions {
  /** Fallback poll for deliveries nothing announces: retries whose delay ran out, lapsed leases. */
  pollIntervalMs: number;
  observer: DeliveryObserver;
  onError: (error: unknown, context: string) => void;
}

export interface SettleResult {
  ackId: string;
  status: SettleStatus;
}

export class DeliveryService {
  private readonly dispatchers = new Map<string, SubscriptionDispatcher>();
  private readonly consumers = new Set<Consumer>();
  private poller: NodeJS.Timeout | undefined;
  private draining = false;

  constructor(
    private readonly queue: DeliveryQueue,
    private readonly events: EventStore,
    private readonly options: DeliveryServiceOptions,
  ) {}

  start(): void {
    this.poller = setInterval(() => this.poll(), this.options.pollIntervalMs);
    this.poller.unref();
  }

  get consumerCount(): number {
    return this.consumers.size;
  }

  open(subscription: Subscription, name: string, maxOutstanding: number, sink: DeliverySink): Consumer {
    const consumer = new Consumer(subscription, name, maxOutstanding, sink);
    this.consumers.add(consumer);
    let dispatcher = this.dispatchers.get(subscription.name);
    if (!dispatcher || dispatcher.subscription.queue !== subscription.queue) {
      dispatcher = new SubscriptionDispatcher(
        subscription,
        this.queue,
        this.events,
        this.options.observer,
        (error, sub) => this.options.onError(error, `dispatching ${sub.name}`),
      );
      this.dispatchers.set(subscription.name, dispatcher);
    }
    dispatcher.consumers.add(consumer);
    this.options.observer.consumers(subscription.name, 1);
    if (!this.draining) dispatcher.wake();
    return consumer;
  }

  /** Closes the consumer; whatever it still held goes back to the subscription at once. */
  async close(consumer: Consumer): Promise<void> {
    if (consumer.isClosed) return;
    const leases = consumer.close();
    this.consumers.delete(consumer);
    this.options.observer.consumers(consumer.subscription.name, -1);
    const dispatcher = this.dispatchers.get(consumer.subscription.name);
    dispatcher?.consumers.delete(consumer);
    if (dispatcher && dispatcher.consumers.size === 0) {
      this.dispatchers.delete(consumer.subscription.name);
    }
    if (leases.length > 0) {
      await this.queue.release(consumer.subscription.queue, leases);
      this.wake([consumer.subscription.name]);
    }
  }

  async ack(consumer: Consumer, ackIds: string[]): Promise<SettleResult[]> {
    return this.settle(consumer, ackIds, "acked", (leases) =>
      this.queue.complete(consumer.subscription.queue, leases),
    );
  }

  async nack(consumer: Consumer, ackIds: string[]): Promise<SettleResult[]> {
    return this.settle(consumer, ackIds, "nacked", (leases) =>
      this.queue.release(consumer.subscription.queue, leases),
    );
  }

  setWindow(consumer: Consumer, maxOutstanding: number): void {
    consumer.setWindow(maxOutstanding);
    this.wake([consumer.subscription.name]);
  }

  /** Wakes the dispatchers of these subscriptions ("*" for all) if they have streams here. */
  wake(subscriptions: string[]): void {
    if (this.draining) return;
    if (subscriptions.includes("*")) {
      for (const dispatcher of this.dispatchers.values()) dispatcher.wake();
      return;
    }
    for (const name of subscriptions) this.dispatchers.get(name)?.wake();
  }

  /**
   * Stops handing out deliveries and waits up to `timeoutMs` for consumers to settle what they
   * hold; the caller then closes the streams, which releases the rest.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.poller) clearInterval(this.poller);
    await Promise.all([...this.dispatchers.values()].map((d) => d.idle()));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && [...this.consumers].some((c) => c.outstanding > 0 || c.settling > 0)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  get consumersOpen(): Consumer[] {
    return [...this.consumers];
  }

  private async settle(
    consumer: Consumer,
    ackIds: string[],
    done: SettleStatus,
    apply: (leases: Lease[]) => Promise<Set<string>>,
  ): Promise<SettleResult[]> {
    const { leases, others } = consumer.claim(ackIds);
    let settled = new Set<string>();
    if (leases.size > 0) {
      consumer.settling++;
      try {
        settled = await apply([...leases.values()]);
      } finally {
        consumer.settling--;
      }
    }
    // Settling frees window: the dispatcher may now hand out more.
    if (leases.size > 0) this.wake([consumer.subscription.name]);
    const results = ackIds.map((ackId): SettleResult => {
      const lease = leases.get(ackId);
      if (lease) return { ackId, status: settled.has(lease.jobId) ? done : "stale" };
      return { ackId, status: others.get(ackId) ?? "unknown" };
    });
    const counts = new Map<SettleStatus, number>();
    for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    for (const [status, count] of counts)
      this.options.observer.settled(consumer.subscription.name, status, count);
    return results;
  }

  private poll(): void {
    const now = Date.now();
    for (const consumer of this.consumers) consumer.expireLapsed(now);
    for (const dispatcher of this.dispatchers.values()) {
      if (dispatcher.free > 0) dispatcher.wake();
    }
  }
}
