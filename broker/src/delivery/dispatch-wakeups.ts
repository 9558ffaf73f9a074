// When this broker's dispatchers run: woken by name or by topic, at a due time (a retry's backoff,
// a delayed event), and by the fallback poll for what nothing announced.
import type { ConsumerRegistry } from "./consumer-registry.ts";
import type { DeliveryQueue } from "./ports.ts";
import type { WakeCause } from "./subscription-dispatcher.ts";

/** The database's clock and ours differ a little: wake a moment after a due time, not before. */
const DUE_MARGIN_MS = 25;

export class DispatchWakeups {
  /** Per subscription, the next time a retry or delayed event of it falls due. */
  private readonly dueWakeups = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  /** Whether the fallback poll's question to the queue is still out (a slow database). */
  private polling = false;

  constructor(
    private readonly registry: ConsumerRegistry,
    private readonly queue: DeliveryQueue,
    private readonly options: {
      isDraining: () => boolean;
      onError: (error: unknown, context: string) => void;
    },
  ) {}

  private get isDraining(): boolean {
    return this.options.isDraining();
  }

  /** Forgets every due-time timer (a drain). */
  stop(): void {
    for (const { timer } of this.dueWakeups.values()) clearTimeout(timer);
    this.dueWakeups.clear();
  }

  /**
   * Wakes the dispatchers of these subscriptions when `atMs` comes: a retry's backoff or a delayed
   * event falls due then, and nothing else would announce it before the fallback poll. One timer
   * per subscription, for the earliest time asked.
   */
  wakeAt(subscriptions: string[], atMs: number): void {
    if (this.isDraining) return;
    for (const name of subscriptions) {
      const pending = this.dueWakeups.get(name);
      if (pending && pending.at <= atMs) continue;
      if (pending) clearTimeout(pending.timer);
      const timer = setTimeout(
        () => {
          this.dueWakeups.delete(name);
          this.wake([name]);
        },
        Math.max(0, atMs - Date.now() + DUE_MARGIN_MS),
      );
      timer.unref();
      this.dueWakeups.set(name, { at: atMs, timer });
    }
  }

  /**
   * Wakes the dispatchers of these subscriptions ("*" for all) if they have streams here: "work"
   * when their queues may hold new deliveries, "room" when only window freed.
   */
  wake(subscriptions: string[], cause: WakeCause = "work"): void {
    if (this.isDraining) return;
    if (subscriptions.includes("*")) {
      for (const dispatcher of this.registry.dispatchers()) dispatcher.wake(cause);
      return;
    }
    for (const name of subscriptions) this.registry.dispatcher(name)?.wake(cause);
  }

  /**
   * Wakes the dispatchers of these topics' subscriptions ("*" for all) that have streams here:
   * "events" after a publish, "work" when jobs were queued too (a redrive, a missed NOTIFY).
   * `newest`, for one topic, is the newest event announced, when known (a publish here).
   */
  wakeTopics(topics: string[], cause: WakeCause = "events", newest?: string): void {
    if (this.isDraining) return;
    const all = topics.includes("*");
    const wanted = new Set(topics);
    const upTo = topics.length === 1 ? newest : undefined;
    for (const dispatcher of this.registry.dispatchers()) {
      if (all || wanted.has(dispatcher.subscription.topic)) dispatcher.wake(cause, upTo);
    }
  }

  /**
   * The fallback poll: finds what no wake-up announced (a lost NOTIFY, another broker's retry or
   * delayed event falling due, a lapsed lease put back). It asks the queue once which subscriptions
   * with free window have deliveries due, and wakes only those. Waking every dispatcher made each
   * fetch, mostly for nothing: with 100 subscriptions, 100 fetches a second sharing one group commit
   * (300 ms a round, bench (d)), which delivery to the subscriptions with work waited behind.
   */
  poll(): void {
    const now = Date.now();
    for (const consumer of this.registry.consumers) consumer.expireLapsed(now);
    if (this.polling || this.isDraining) return;
    const hungry = [...this.registry.dispatchers()].filter((dispatcher) => dispatcher.free > 0);
    // Deliveries leased earlier and waiting here for room go out without asking the queue.
    for (const dispatcher of hungry) if (dispatcher.holdsWaiting) dispatcher.wake("room");
    if (hungry.length === 0) return;
    this.polling = true;
    this.queue
      // One dispatcher per subscription, and each subscription has a queue of its own.
      .queuesWithWork(hungry.map((dispatcher) => dispatcher.subscription.queue))
      .then(
        (queues) => {
          for (const dispatcher of hungry) {
            if (queues.has(dispatcher.subscription.queue)) dispatcher.wake();
          }
        },
        (error: unknown) => this.options.onError(error, "polling for deliveries"),
      )
      .finally(() => {
        this.polling = false;
      });
  }
}
