// The publish hand-off (issue 21): a publish leases its new events to this broker's subscriptions
// that are waiting for exactly those, in its own transaction. A dispatcher asks when it is idle,
// with its sources drained and room in its streams' windows, on a subscription whose leases are
// plain batches (no filter, no ordering, no acked retention): then the next events of its topic
// are all it could lease, and the publish statement leases them if its cursor is still at the
// topic's previous newest event (queries/publish.ts). Its streams get them when the publish
// commits: no read, no lease statement and no commit of their own, which is where the delivery of
// a lone event spent most of its time and commits (bench (b), (d)). A cursor that was not there
// (another broker leased, a seek) takes nothing, and the dispatcher leases from it as before.
import type { HandedDelivery, HandoffAsk } from "./model.ts";
import type { HandoffClaim, SubscriptionDispatcher } from "./subscription-dispatcher.ts";

/** The asks one publish carries, settled once it has committed or failed. */
export class Handoff {
  static readonly none = new Handoff([]);

  constructor(private readonly claims: { dispatcher: SubscriptionDispatcher; claim: HandoffClaim }[]) {}

  /** Whether any dispatcher claimed room (nothing to settle otherwise). */
  get claimed(): boolean {
    return this.claims.length > 0;
  }

  get asks(): HandoffAsk[] {
    return this.claims.map(({ claim }) => ({ queue: claim.queue, room: claim.room }));
  }

  /** Hands each dispatcher what the publish leased for it (nothing when it failed). */
  settle(handedOff: Map<string, HandedDelivery[]> | undefined): void {
    for (const { dispatcher, claim } of this.claims)
      dispatcher.takeHandoff(claim, handedOff?.get(claim.queue));
  }
}

/** Where a publish asks which of this broker's subscriptions of its topic take its events now. */
export interface PublishHandoffs {
  ask(topic: string): Handoff;
}

export class DispatcherHandoffs implements PublishHandoffs {
  constructor(
    private readonly dispatchers: () => Iterable<SubscriptionDispatcher>,
    private readonly isDraining: () => boolean,
  ) {}

  ask(topic: string): Handoff {
    if (this.isDraining()) return Handoff.none;
    const claims: { dispatcher: SubscriptionDispatcher; claim: HandoffClaim }[] = [];
    for (const dispatcher of this.dispatchers()) {
      if (dispatcher.subscription.topic !== topic) continue;
      const claim = dispatcher.claimHandoff();
      if (claim) claims.push({ dispatcher, claim });
    }
    return claims.length === 0 ? Handoff.none : new Handoff(claims);
  }
}
