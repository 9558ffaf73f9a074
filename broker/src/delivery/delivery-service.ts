// Streams in, settles out: opens and closes consumers on subscriptions, settles their acks,
// nacks, rejects and extensions against the queue, sweeps lapsed leases, and keeps one dispatcher
// per subscription that has streams here.
import { Consumer, type DeliverySink, type SettleStatus } from "./consumer.ts";
import { MeshError } from "./errors.ts";
import type { FailureOutcome, Lease, Subscription } from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { DeliveryQueue, EventStore } from "./ports.ts";
import { failureOutcome } from "./retry-policy.ts";
import { releaseLeases, SubscriptionDispatcher } from "./subscription-dispatcher.ts";

export interface DeliveryServiceOptions {
  /** Fallback poll for deliveries nothing announces: retries whose delay ran out, lapsed leases. */
  pollIntervalMs: number;
  /** How often lapsed leases (on any broker) are looked for and failed. */
  sweepIntervalMs: number;
  observer: DeliveryObserver;
  /** Reads a subscription's current policy (for lapsed leases of streams on other brokers). */
  loadSubscription: (name: string) => Promise<Subscription | undefined>;
  onError: (error: unknown, context: string) => void;
}

export interface SettleResult {
  ackId: string;
  status: SettleStatus;
}

const SWEEP_BATCH = 500;

export class DeliveryService {
  private readonly dispatchers = new Map<string, SubscriptionDispatcher>();
  private readonly consumers = new Set<Consumer>();
  private timers: NodeJS.Timeout[] = [];
  private draining = false;
  private sweeping = false;

  constructor(
    private readonly queue: DeliveryQueue,
    private readonly events: EventStore,
    private readonly options: DeliveryServiceOptions,
  ) {}

  start(): void {
    this.timers = [
      setInterval(() => this.poll(), this.options.pollIntervalMs),
      setInterval(() => void this.sweepLapsed(), this.options.sweepIntervalMs),
    ];
    for (const timer of this.timers) timer.unref();
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

  /** Takes a changed policy into use for this broker's streams on the subscription. */
  refresh(subscription: Subscription): void {
    const dispatcher = this.dispatchers.get(subscription.name);
    if (!dispatcher || dispatcher.subscription.queue !== subscription.queue) return;
    dispatcher.subscription = subscription;
    for (const consumer of dispatcher.consumers) consumer.subscription = subscription;
  }

  /** Closes the consumer; what it still held goes back to the subscription (after the backoff). */
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
      const sub = consumer.subscription;
      await this.fail(
        sub,
        leases.map((lease) => failureOutcome(sub, lease, { error: "stream closed before the ack" })),
      );
      this.wake([sub.name]);
    }
  }

  ack(consumer: Consumer, ackIds: string[]): Promise<SettleResult[]> {
    return this.settle(consumer, ackIds, "acked", async (leases) => {
      const settled = await this.queue.complete(consumer.subscription, leases);
      const now = Date.now();
      const latencies = leases
        .filter((l) => settled.has(l.jobId) && l.publishedAt)
        .map((l) => (now - (l.publishedAt as Date).getTime()) / 1000);
      if (latencies.length > 0) this.options.observer.acked(consumer.subscription.name, latencies);
      return settled;
    });
  }

  /** Redelivers after the backoff, or after `delaySeconds` when given; the last attempt dead-letters. */
  nack(consumer: Consumer, ackIds: string[], reason: string, delaySeconds?: number): Promise<SettleResult[]> {
    const sub = consumer.subscription;
    const error = reason || "nacked";
    const outcomes = new Map<string, FailureOutcome>();
    return this.settle(
      consumer,
      ackIds,
      "nacked",
      (leases) => {
        const list = leases.map((lease) => failureOutcome(sub, lease, { error, delaySeconds }));
        for (const o of list) outcomes.set(o.lease.jobId, o);
        return this.fail(sub, list);
      },
      (lease) => ("deadLetter" in (outcomes.get(lease.jobId) ?? {}) ? "dead_lettered" : "nacked"),
    );
  }

  /** Dead-letters at once, whatever attempts are left. */
  reject(consumer: Consumer, ackIds: string[], reason: string): Promise<SettleResult[]> {
    const sub = consumer.subscription;
    if (!sub.deadLettering) {
      throw new MeshError(
        "failed_precondition",
        `subscription ${sub.name} has dead lettering off, so there is nowhere to reject to; nack instead`,
      );
    }
    const error = reason || "rejected";
    return this.settle(consumer, ackIds, "dead_lettered", (leases) =>
      this.fail(
        sub,
        leases.map((lease) => failureOutcome(sub, lease, { error, reject: true })),
      ),
    );
  }

  /** Extends the leases to run out `seconds` from now; they stay held by the stream. */
  async extend(consumer: Consumer, ackIds: string[], seconds: number): Promise<SettleResult[]> {
    const { leases, others } = consumer.peek(ackIds);
    const extendedIds =
      leases.size > 0
        ? await this.queue.extend(consumer.subscription.queue, [...leases.values()], seconds)
        : new Set<string>();
    const expiresAt = Date.now() + seconds * 1000;
    const results = ackIds.map((ackId): SettleResult => {
      const lease = leases.get(ackId);
      if (lease) return { ackId, status: extendedIds.has(lease.jobId) ? "extended" : "stale" };
      return { ackId, status: others.get(ackId) ?? "unknown" };
    });
    consumer.extended(
      results.filter((r) => r.status === "extended").map((r) => r.ackId),
      expiresAt,
    );
    return results;
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
    for (const timer of this.timers) clearInterval(timer);
    await Promise.all([...this.dispatchers.values()].map((d) => d.idle()));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && [...this.consumers].some((c) => c.outstanding > 0 || c.settling > 0)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    while (this.sweeping) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /**
   * Fails every lapsed lease of every subscription, wherever its stream was (a dead broker's too),
   * by the subscription's retry policy. Brokers may race on the same lease: the settle is fenced
   * to the attempt, so only one of them counts it.
   */
  async sweepLapsed(): Promise<number> {
    if (this.sweeping || this.draining) return 0;
    this.sweeping = true;
    try {
      const lapsed = await this.queue.findLapsed(SWEEP_BATCH);
      const bySubscription = new Map<string, Lease[]>();
      for (const { subscription, lease } of lapsed) {
        bySubscription.set(subscription, [...(bySubscription.get(subscription) ?? []), lease]);
      }
      let failed = 0;
      for (const [name, leases] of bySubscription) {
        const sub = await this.options.loadSubscription(name);
        if (!sub) continue;
        const settled = await this.fail(
          sub,
          leases.map((lease) => failureOutcome(sub, lease, { error: "lease expired" })),
        );
        failed += settled.size;
        if (settled.size > 0) this.wake([name]);
      }
      return failed;
    } catch (error) {
      this.options.onError(error, "sweeping lapsed leases");
      return 0;
    } finally {
      this.sweeping = false;
    }
  }

  /** Settles failures through the queue and counts the ones that ended as dead letters. */
  private async fail(subscription: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    const settled = await this.queue.fail(subscription, outcomes);
    for (const reason of ["max_attempts", "rejected"] as const) {
      const count = outcomes.filter(
        (o) => "deadLetter" in o && o.deadLetter === reason && settled.has(o.lease.jobId),
      ).length;
      if (count > 0) this.options.observer.deadLettered(subscription.name, reason, count);
    }
    return settled;
  }

  private async settle(
    consumer: Consumer,
    ackIds: string[],
    done: SettleStatus,
    apply: (leases: Lease[]) => Promise<Set<string>>,
    statusOf: (lease: Lease) => SettleStatus = () => done,
  ): Promise<SettleResult[]> {
    const { leases, others } = consumer.claim(ackIds);
    let settled = new Set<string>();
    if (leases.size > 0) {
      consumer.settling++;
      try {
        settled = await apply([...leases.values()]);
      } catch (error) {
        // The settle's transaction failed: its leases go back now instead of waiting out the deadline.
        await releaseLeases(this.queue, consumer.subscription, [...leases.values()], "settle failed");
        this.wake([consumer.subscription.name]);
        throw error;
      } finally {
        consumer.settling--;
      }
    }
    // Settling frees window: the dispatcher may now hand out more.
    if (leases.size > 0) this.wake([consumer.subscription.name]);
    const results = ackIds.map((ackId): SettleResult => {
      const lease = leases.get(ackId);
      if (lease) return { ackId, status: settled.has(lease.jobId) ? statusOf(lease) : "stale" };
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
