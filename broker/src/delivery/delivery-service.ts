// Streams in, settles out: the delivery layer's face to the stream sessions. Its roles each live in
// a module of their own, and this composes them and owns the broker's delivery lifecycle (serving,
// then draining):
//   consumer-registry.ts  open consumers and one dispatcher per subscription with streams here
//   dispatch-wakeups.ts   when dispatchers run (by name, by topic, at a due time, the fallback poll)
//   settler.ts            ack, nack, reject, extend; the failure rule; settles through an outage
//   lease-sweeper.ts      leases that ran out, on any broker, failed by the retry rule
//   publish-handoffs.ts   which dispatchers a publish here leases its new events to
import { Consumer, type DeliverySink, type Window } from "./consumer.ts";
import { ConsumerRegistry } from "./consumer-registry.ts";
import { DispatchWakeups } from "./dispatch-wakeups.ts";
import { LeaseSweeper } from "./lease-sweeper.ts";
import type { StoredEvent, Subscription } from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import { DatabaseOutageClock } from "./outage-clock.ts";
import type { DeliveryQueue, EventStore } from "./ports.ts";
import { DispatcherHandoffs, type PublishHandoffs } from "./publish-handoffs.ts";
import { failureOutcome } from "./retry-policy.ts";
import { type SettleResult, Settler } from "./settler.ts";
import { SubscriptionDispatcher, type WakeCause } from "./subscription-dispatcher.ts";
import { waitAtMost } from "./wait-at-most.ts";

export type { SettleResult } from "./settler.ts";

export interface DeliveryServiceOptions {
  /** Fallback poll for deliveries nothing announces: retries whose delay ran out, lapsed leases. */
  pollIntervalMs: number;
  /** How often lapsed leases (on any broker) are looked for and failed. */
  sweepIntervalMs: number;
  observer: DeliveryObserver;
  /** Reads a subscription's current policy (for lapsed leases of streams on other brokers). */
  loadSubscription: (name: string) => Promise<Subscription | undefined>;
  onError: (error: unknown, context: string) => void;
  /** Whether a subscription's filter takes an event (run when leasing from its cursor). */
  accepts: (subscription: Subscription, event: StoredEvent) => boolean;
  /** How long settles go on through a database outage at least (default 60 s); for tests. */
  settleOutageRetryMs?: number;
  /** How long sweeps wait after this broker last saw the database unavailable (default 3 s). */
  sweepGraceAfterOutageMs?: number;
}

export class DeliveryService {
  private readonly registry: ConsumerRegistry;
  private readonly wakeups: DispatchWakeups;
  private readonly settler: Settler;
  private readonly sweeper: LeaseSweeper;
  /** For the publisher: this broker's dispatchers that take a publish's events in its transaction. */
  readonly handoffs: PublishHandoffs;
  private timers: NodeJS.Timeout[] = [];
  /**
   * Serving; or draining, which hands out nothing more and lasts until `giveUpAt` (ms since
   * epoch), when settles still retrying an unavailable database stop.
   */
  private lifecycle: { phase: "serving" } | { phase: "draining"; giveUpAt: number } = { phase: "serving" };

  private get isDraining(): boolean {
    return this.lifecycle.phase === "draining";
  }

  constructor(
    queue: DeliveryQueue,
    events: EventStore,
    private readonly options: DeliveryServiceOptions,
  ) {
    const isDraining = () => this.isDraining;
    this.registry = new ConsumerRegistry(
      (subscription) =>
        new SubscriptionDispatcher(subscription, queue, events, {
          observer: options.observer,
          onError: (error, sub) => options.onError(error, `dispatching ${sub.name}`),
          accepts: options.accepts,
          wakeAt: (name, atMs) => this.wakeups.wakeAt([name], atMs),
        }),
    );
    this.wakeups = new DispatchWakeups(this.registry, queue, { isDraining, onError: options.onError });
    this.handoffs = new DispatcherHandoffs(() => this.registry.dispatchers(), isDraining);
    const outage = new DatabaseOutageClock();
    this.settler = new Settler(queue, this.wakeups, outage, {
      observer: options.observer,
      ...(options.settleOutageRetryMs === undefined
        ? {}
        : { settleOutageRetryMs: options.settleOutageRetryMs }),
      drainGivesUpAt: () => (this.lifecycle.phase === "draining" ? this.lifecycle.giveUpAt : undefined),
    });
    this.sweeper = new LeaseSweeper(queue, this.settler, this.wakeups, outage, {
      loadSubscription: options.loadSubscription,
      onError: options.onError,
      isDraining,
      ...(options.sweepGraceAfterOutageMs === undefined
        ? {}
        : { sweepGraceAfterOutageMs: options.sweepGraceAfterOutageMs }),
    });
  }

  start(): void {
    this.timers = [
      setInterval(() => this.wakeups.poll(), this.options.pollIntervalMs),
      setInterval(() => void this.sweeper.sweepLapsed(), this.options.sweepIntervalMs),
    ];
    for (const timer of this.timers) timer.unref();
  }

  open(subscription: Subscription, name: string, window: Window, sink: DeliverySink): Consumer {
    const consumer = new Consumer(subscription, name, window, sink);
    const dispatcher = this.registry.add(consumer);
    this.options.observer.consumers(subscription.name, 1);
    if (!this.isDraining) dispatcher.wake();
    return consumer;
  }

  /** This broker's open streams on the subscription (each broker knows only its own). */
  consumersOf(subscription: string): Consumer[] {
    return [...(this.registry.dispatcher(subscription)?.consumers ?? [])];
  }

  /** Takes a changed policy into use for this broker's streams on the subscription. */
  refresh(subscription: Subscription): void {
    const dispatcher = this.registry.dispatcherOf(subscription);
    if (!dispatcher) return;
    dispatcher.subscription = subscription;
    for (const consumer of dispatcher.consumers) consumer.subscription = subscription;
  }

  /** Closes the consumer; what it still held goes back to the subscription (after the backoff). */
  async close(consumer: Consumer): Promise<void> {
    if (consumer.isClosed) return;
    const leases = consumer.close();
    this.options.observer.consumers(consumer.subscription.name, -1);
    const emptied = this.registry.remove(consumer);
    if (emptied) await emptied.releaseWaiting();
    if (leases.length > 0) {
      const sub = consumer.subscription;
      await this.settler.fail(
        sub,
        leases.map((lease) => failureOutcome(sub, lease, { error: "stream closed before the ack" })),
      );
      this.wakeups.wake([sub.name]);
    }
  }

  ack(consumer: Consumer, ackIds: string[]): Promise<SettleResult[]> {
    return this.settler.ack(consumer, ackIds);
  }

  /** Redelivers after the backoff, or after `delaySeconds` when given; the last attempt dead-letters. */
  nack(consumer: Consumer, ackIds: string[], reason: string, delaySeconds?: number): Promise<SettleResult[]> {
    return this.settler.nack(consumer, ackIds, reason, delaySeconds);
  }

  /** Dead-letters at once, whatever attempts are left. */
  reject(consumer: Consumer, ackIds: string[], reason: string): Promise<SettleResult[]> {
    return this.settler.reject(consumer, ackIds, reason);
  }

  /** Extends the leases to run out `seconds` from now; they stay held by the stream. */
  extend(consumer: Consumer, ackIds: string[], seconds: number): Promise<SettleResult[]> {
    return this.settler.extend(consumer, ackIds, seconds);
  }

  /** Answers a settle refused before it changed anything (Settler.refuse). */
  refuse(
    consumer: Consumer,
    ackIds: string[],
    status: "invalid_argument" | "failed_precondition",
    message: string,
  ): SettleResult[] {
    return this.settler.refuse(consumer, ackIds, status, message);
  }

  /** Changes the consumer's window; `bytes` left out keeps its byte window. */
  setWindow(consumer: Consumer, messages: number, bytes?: number): void {
    consumer.setWindow(messages, bytes);
    this.wakeups.wake([consumer.subscription.name], "room");
  }

  /** Wakes the dispatchers of these subscriptions ("*" for all) that have streams here. */
  wake(subscriptions: string[], cause: WakeCause = "work"): void {
    this.wakeups.wake(subscriptions, cause);
  }

  /**
   * Wakes the dispatchers of these topics' subscriptions ("*" for all) that have streams here;
   * `newest`, for one topic, is the newest event announced when known (DispatchWakeups.wakeTopics).
   */
  wakeTopics(topics: string[], cause: WakeCause = "events", newest?: string): void {
    this.wakeups.wakeTopics(topics, cause, newest);
  }

  /** Fails every lapsed lease of every subscription (LeaseSweeper). */
  sweepLapsed(): Promise<number> {
    return this.sweeper.sweepLapsed();
  }

  /**
   * Stops handing out deliveries and waits up to `timeoutMs` for consumers to settle what they
   * hold; the caller then closes the streams, which releases the rest.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.lifecycle = { phase: "draining", giveUpAt: Date.now() + timeoutMs };
    for (const timer of this.timers) clearInterval(timer);
    this.wakeups.stop();
    // A dispatch pass stuck on a database that went away must not hold the shutdown.
    await waitAtMost(Promise.all([...this.registry.dispatchers()].map((d) => d.idle())), timeoutMs);
    const deadline = Date.now() + timeoutMs;
    while (
      Date.now() < deadline &&
      [...this.registry.consumers].some((c) => c.outstanding > 0 || c.settling > 0)
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitAtMost(this.sweeper.idle(), timeoutMs);
  }
}
