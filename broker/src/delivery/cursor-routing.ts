// What a lease from a subscription's cursor makes of each event after it, in order: skipped (the
// filter does not take it), leased now to this broker's streams, or scheduled as a pg-boss job of
// its own (a delayed event waits for its time; an ordered subscription's events queue behind
// their key's head, which pg-boss's key_strict_fifo policy keeps to one in flight). Pure: the
// dispatcher reads, this decides, the store executes (one statement, fenced on the cursor).
import type { LeaseHolding, ScheduledDelivery, StoredEvent, Subscription } from "./model.ts";

/** The ordering key asked for an unkeyed event on an ordered subscription: one of its own, "~<seq>". */
export const OWN_KEY = "~";

export interface CursorPlan {
  /** The seq the cursor moves to: the last event decided. */
  to: string;
  /** Every job to insert, leased or scheduled, in seq order. */
  deliveries: ScheduledDelivery[];
  /** The events leased now, in seq order. */
  leased: StoredEvent[];
  /**
   * How they are held: as one batch (a row for all of them, settled slot by slot), unless the
   * subscription keeps acked deliveries for a while, which pg-boss does job by job.
   */
  holding: LeaseHolding;
  /** Scheduled jobs that are due at once (an ordered subscription's): a fetch takes them. */
  dueNow: number;
  /** When the earliest delayed event falls due (ms since epoch), if any was scheduled. */
  earliestDueMs: number | undefined;
}

/**
 * Decides the events after the cursor, up to `capacity` leased or scheduled; undefined when not
 * one event could be decided (no room). `newId` gives time-ordered ids for ordered subscriptions.
 */
export function planCursorLease(
  subscription: Subscription,
  events: StoredEvent[],
  capacity: number,
  now: number,
  accepts: (subscription: Subscription, event: StoredEvent) => boolean,
  newId: () => string,
): CursorPlan | undefined {
  const plan: CursorPlan = {
    to: "",
    deliveries: [],
    leased: [],
    holding: subscription.ackedRetentionSeconds === 0 ? "batch" : "jobs",
    dueNow: 0,
    earliestDueMs: undefined,
  };
  let taken = 0;
  for (const event of events) {
    if (!accepts(subscription, event)) {
      plan.to = event.seq;
      continue;
    }
    if (taken >= capacity) break;
    taken++;
    plan.to = event.seq;
    const delayedUntil =
      event.deliverAfter && event.deliverAfter.getTime() > now ? event.deliverAfter : undefined;
    if (subscription.ordering) {
      plan.deliveries.push({
        seq: event.seq,
        leased: false,
        startAfter: delayedUntil,
        id: newId(),
        key: event.orderingKey || `${OWN_KEY}${event.seq}`,
      });
      if (!delayedUntil) plan.dueNow++;
    } else if (delayedUntil) {
      plan.deliveries.push({ seq: event.seq, leased: false, startAfter: delayedUntil });
    } else {
      plan.deliveries.push({ seq: event.seq, leased: true });
      plan.leased.push(event);
    }
    if (delayedUntil) {
      const due = delayedUntil.getTime();
      plan.earliestDueMs = Math.min(plan.earliestDueMs ?? due, due);
    }
  }
  return plan.to === "" ? undefined : plan;
}
