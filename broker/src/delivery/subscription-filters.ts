// Subscription filters, parsed once per text: subscriptions are few and a filter never changes
// after creation. Run when a subscription leases from its cursor (an event the filter does not
// take just moves the cursor).
import { type Filter, MATCH_ALL, matchesFilter, parseFilter } from "./filter.ts";
import type { EventEnvelope, Subscription } from "./model.ts";

export class SubscriptionFilters {
  private readonly parsed = new Map<string, Filter>();

  /** Whether a subscription's filter lets an event through. */
  accepts(subscription: Subscription, event: EventEnvelope): boolean {
    return matchesFilter(this.filterOf(subscription.filter), event.attributes);
  }

  private filterOf(text: string): Filter {
    if (!text) return MATCH_ALL;
    let filter = this.parsed.get(text);
    if (!filter) {
      filter = parseFilter(text);
      this.parsed.set(text, filter);
    }
    return filter;
  }
}
