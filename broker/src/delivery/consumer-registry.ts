// This broker's open consumers (one per stream) and the dispatcher of each subscription they are
// on: a dispatcher exists exactly while its subscription has a consumer here.
import type { Consumer } from "./consumer.ts";
import type { Subscription } from "./model.ts";
import type { SubscriptionDispatcher } from "./subscription-dispatcher.ts";

export class ConsumerRegistry {
  readonly consumers = new Set<Consumer>();
  private readonly bySubscription = new Map<string, SubscriptionDispatcher>();

  constructor(private readonly newDispatcher: (subscription: Subscription) => SubscriptionDispatcher) {}

  /** Adds the consumer to its subscription's dispatcher (a new one for a new incarnation). */
  add(consumer: Consumer): SubscriptionDispatcher {
    const subscription = consumer.subscription;
    this.consumers.add(consumer);
    let dispatcher = this.bySubscription.get(subscription.name);
    if (!dispatcher || dispatcher.subscription.queue !== subscription.queue) {
      dispatcher = this.newDispatcher(subscription);
      this.bySubscription.set(subscription.name, dispatcher);
    }
    dispatcher.consumers.add(consumer);
    return dispatcher;
  }

  /** Removes the consumer; returns its dispatcher when that was its last consumer (now dropped). */
  remove(consumer: Consumer): SubscriptionDispatcher | undefined {
    this.consumers.delete(consumer);
    const dispatcher = this.bySubscription.get(consumer.subscription.name);
    dispatcher?.consumers.delete(consumer);
    if (!dispatcher || dispatcher.consumers.size > 0) return undefined;
    this.bySubscription.delete(consumer.subscription.name);
    return dispatcher;
  }

  /** The dispatcher of this incarnation of the subscription, if it has consumers here. */
  dispatcherOf(subscription: Subscription): SubscriptionDispatcher | undefined {
    const dispatcher = this.bySubscription.get(subscription.name);
    return dispatcher?.subscription.queue === subscription.queue ? dispatcher : undefined;
  }

  dispatcher(name: string): SubscriptionDispatcher | undefined {
    return this.bySubscription.get(name);
  }

  dispatchers(): IterableIterator<SubscriptionDispatcher> {
    return this.bySubscription.values();
  }
}
