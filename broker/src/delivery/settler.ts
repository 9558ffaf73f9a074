// The settles of a broker's streams: ack, nack, reject and extend against the queue, each fenced
// to the attempt it names and answered per ack id, run again while the database is unavailable
// (for the ack deadline or 60 s), and the failure rule (retry after the backoff, or dead letter)
// that a nack, a reject, a closed stream and a lapsed lease all go through (`fail`).
import type { Consumer, SettleStatus } from "./consumer.ts";
import type { DispatchWakeups } from "./dispatch-wakeups.ts";
import { MeshError } from "./errors.ts";
import type { FailureOutcome, Lease, Subscription } from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { DatabaseOutageClock } from "./outage-clock.ts";
import type { DeliveryQueue } from "./ports.ts";
import { failureOutcome } from "./retry-policy.ts";
import { checkExtendSeconds, checkNackDelay, checkReason } from "./settle-checks.ts";
import { releaseLeases } from "./subscription-dispatcher.ts";

export interface SettleResult {
  ackId: string;
  status: SettleStatus;
  /** Why a settle was refused, for the client. */
  message?: string;
}

/** A settle that finds the database unavailable is run again this soon, then less often. */
const SETTLE_RETRY_FIRST_MS = 50;
const SETTLE_RETRY_MAX_MS = 1_000;
/**
 * A settle goes on being run while the database is unavailable for its ack deadline or this long,
 * whichever is longer: a Postgres restart or a managed failover takes tens of seconds, and an ack
 * given up before the database is back means a redelivery.
 */
const SETTLE_OUTAGE_RETRY_MS = 60_000;

export interface SettlerOptions {
  observer: DeliveryObserver;
  /** How long settles go on through a database outage at least (default 60 s); for tests. */
  settleOutageRetryMs?: number;
  /** When a drain gives up on settles still retrying (ms since epoch), or none while serving. */
  drainGivesUpAt: () => number | undefined;
}

export class Settler {
  constructor(
    private readonly queue: DeliveryQueue,
    private readonly wakeups: DispatchWakeups,
    private readonly outage: DatabaseOutageClock,
    private readonly options: SettlerOptions,
  ) {}

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
    checkReason("nack.reason", reason);
    checkNackDelay(delaySeconds);
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
    checkReason("reject.reason", reason);
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
    checkExtendSeconds(seconds);
    const { leases, others } = consumer.peek(ackIds);
    const extended =
      leases.size > 0
        ? await this.whileUnavailable(consumer.subscription, () =>
            this.queue.extend(consumer.subscription.queue, [...leases.values()], seconds),
          )
        : new Map<string, Lease>();
    const expiresAt = Date.now() + seconds * 1000;
    // An extended lease may come back as another (a batch's slot moved to a job of its own): the
    // stream holds that one under the same ack id from now on.
    const now = new Map<string, Lease>();
    const results = ackIds.map((ackId): SettleResult => {
      const lease = leases.get(ackId);
      const after = lease && extended.get(lease.jobId);
      if (after) now.set(ackId, after);
      if (lease) return { ackId, status: after ? "extended" : "stale" };
      return { ackId, status: others.get(ackId) ?? "unknown" };
    });
    consumer.extended(now, expiresAt);
    return results;
  }

  /**
   * Answers a settle that was refused before it changed anything: the ids this stream holds get the
   * refusal and stay held (the client may settle them another way); the others are answered as
   * any settle would answer them.
   */
  refuse(
    consumer: Consumer,
    ackIds: string[],
    status: "invalid_argument" | "failed_precondition",
    message: string,
  ): SettleResult[] {
    const { others } = consumer.peek(ackIds);
    const results = ackIds.map(
      (ackId): SettleResult => ({
        ackId,
        ...(others.has(ackId) ? { status: others.get(ackId) as SettleStatus } : { status, message }),
      }),
    );
    this.count(consumer, results);
    return results;
  }

  /** Settles failures through the queue and counts the ones that ended as dead letters. */
  async fail(subscription: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    const settled = await this.queue.fail(subscription, outcomes);
    const delays = outcomes.flatMap((o) =>
      "retryAfterSeconds" in o && o.retryAfterSeconds > 0 && settled.has(o.lease.jobId)
        ? [o.retryAfterSeconds]
        : [],
    );
    if (delays.length > 0) this.wakeups.wakeAt([subscription.name], Date.now() + Math.min(...delays) * 1000);
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
    const claims = consumer.claim(ackIds);
    const leases = claims.flatMap((c) => ("lease" in c ? [c.lease] : []));
    let settled = new Set<string>();
    if (leases.length > 0) {
      consumer.settling++;
      try {
        settled = await this.whileUnavailable(consumer.subscription, () => apply(leases));
      } catch (error) {
        // The settle failed for good: its leases go back now instead of waiting out the deadline.
        await releaseLeases(this.queue, consumer.subscription, leases, "settle failed");
        this.wakeups.wake([consumer.subscription.name]);
        throw error;
      } finally {
        consumer.settling--;
      }
      // Settling frees window: the dispatcher may now hand out more (and a nack puts work back).
      this.wakeups.wake([consumer.subscription.name], done === "nacked" ? "work" : "room");
    }
    const results = claims.map(
      (c): SettleResult =>
        "lease" in c
          ? { ackId: c.ackId, status: settled.has(c.lease.jobId) ? statusOf(c.lease) : "stale" }
          : c,
    );
    this.count(consumer, results);
    return results;
  }

  /**
   * Runs a settle, and runs it again (backing off) while the database is unavailable: for the
   * subscription's ack deadline or SETTLE_OUTAGE_RETRY_MS, whichever is longer, and never past a
   * drain's deadline. Failing it instead would end the stream, and every delivery the stream holds
   * would come again once the database is back (the acks a crash swallowed were most of a fault
   * run's duplicates). Past the ack deadline the lease has run out by the database's clock, but
   * nothing could sweep it while the database was away, and this broker's sweeps wait for the
   * settles held through the outage (sweepLapsed). Settles are fenced to the attempt, so one that
   * committed before its answer was lost, or whose lease another broker swept meanwhile, changes
   * nothing when run again.
   */
  private async whileUnavailable<T>(subscription: Subscription, work: () => Promise<T>): Promise<T> {
    const outageRetryMs = this.options.settleOutageRetryMs ?? SETTLE_OUTAGE_RETRY_MS;
    const giveUpAt = Date.now() + Math.max(subscription.ackDeadlineSeconds * 1000, outageRetryMs);
    for (let wait = SETTLE_RETRY_FIRST_MS; ; wait = Math.min(wait * 2, SETTLE_RETRY_MAX_MS)) {
      try {
        return await work();
      } catch (error) {
        const unavailable = this.outage.noteIfUnavailable(error);
        const drainEnds = this.options.drainGivesUpAt() ?? Number.POSITIVE_INFINITY;
        if (!unavailable || Date.now() + wait >= Math.min(giveUpAt, drainEnds)) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait).unref());
      }
    }
  }

  private count(consumer: Consumer, results: SettleResult[]): void {
    const counts = new Map<SettleStatus, number>();
    for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    for (const [status, count] of counts)
      this.options.observer.settled(consumer.subscription.name, status, count);
  }
}
