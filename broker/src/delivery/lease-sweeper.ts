// The lapsed-lease sweep: every supervise interval, one broker of the mesh fails the leases of any
// broker's streams that ran out, by the subscription's retry rule (Settler.fail).

import type { DispatchWakeups } from "./dispatch-wakeups.ts";
import type { Lease, Subscription } from "./model.ts";
import type { DatabaseOutageClock } from "./outage-clock.ts";
import type { DeliveryQueue } from "./ports.ts";
import { failureOutcome } from "./retry-policy.ts";
import type { Settler } from "./settler.ts";

const SWEEP_BATCH = 1_000;
/** Up to 100,000 lapsed leases a sweep; the rest go at the next. */
const SWEEP_MAX_BATCHES = 100;
/**
 * After this broker last saw the database unavailable, its lapsed-lease sweeps wait this long, so
 * that settles held through the outage (retried at least once a second) land before the sweep
 * counts their leases as lapsed: a lease runs out by the database's clock, which went on during
 * the outage while nothing could be recorded.
 */
const SWEEP_GRACE_AFTER_OUTAGE_MS = 3_000;

export interface LeaseSweeperOptions {
  /** Reads a subscription's current policy (for lapsed leases of streams on other brokers). */
  loadSubscription: (name: string) => Promise<Subscription | undefined>;
  onError: (error: unknown, context: string) => void;
  isDraining: () => boolean;
  /** How long sweeps wait after this broker last saw the database unavailable (default 3 s). */
  sweepGraceAfterOutageMs?: number;
}

export class LeaseSweeper {
  /** The sweep in progress, if any. */
  private sweep: Promise<number> | undefined;

  constructor(
    private readonly queue: DeliveryQueue,
    private readonly settler: Settler,
    private readonly wakeups: DispatchWakeups,
    private readonly outage: DatabaseOutageClock,
    private readonly options: LeaseSweeperOptions,
  ) {}

  /** Resolves when no sweep is in progress. */
  idle(): Promise<unknown> {
    return this.sweep ?? Promise.resolve();
  }

  /**
   * Fails every lapsed lease of every subscription, wherever its stream was (a dead broker's too),
   * by the subscription's retry policy. One broker of the mesh sweeps at a time (the others would
   * only race it for the same rows), in batches until no lapsed lease is left, so a consumer or
   * broker that dies holding 10,000 leases has them back within a sweep. Settles are fenced to the
   * attempt all the same.
   */
  sweepLapsed(): Promise<number> {
    if (
      this.options.isDraining() ||
      this.outage.within(this.options.sweepGraceAfterOutageMs ?? SWEEP_GRACE_AFTER_OUTAGE_MS)
    )
      return Promise.resolve(0);
    this.sweep ??= this.queue
      .exclusively(() => this.sweepAllLapsed())
      .then(
        (failed) => failed ?? 0,
        (error: unknown) => {
          this.outage.noteIfUnavailable(error);
          this.options.onError(error, "sweeping lapsed leases");
          return 0;
        },
      )
      .finally(() => {
        this.sweep = undefined;
      });
    return this.sweep;
  }

  private async sweepAllLapsed(): Promise<number> {
    let failed = 0;
    for (let batch = 0; batch < SWEEP_MAX_BATCHES && !this.options.isDraining(); batch++) {
      const lapsed = await this.queue.findLapsed(SWEEP_BATCH);
      const bySubscription = new Map<string, Lease[]>();
      for (const { subscription, lease } of lapsed) {
        const leases = bySubscription.get(subscription);
        if (leases) leases.push(lease);
        else bySubscription.set(subscription, [lease]);
      }
      let settledNow = 0;
      for (const [name, leases] of bySubscription) {
        const sub = await this.options.loadSubscription(name);
        if (!sub) continue;
        const settled = await this.settler.fail(
          sub,
          leases.map((lease) => failureOutcome(sub, lease, { error: "lease expired" })),
        );
        settledNow += settled.size;
        if (settled.size > 0) this.wakeups.wake([name]);
      }
      failed += settledNow;
      // A short batch was the last; one that settled nothing would only come back the same.
      if (lapsed.length < SWEEP_BATCH || settledNow === 0) break;
    }
    return failed;
  }
}
