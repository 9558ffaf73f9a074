// Streams in, settles out: opens and closes consumers on subscriptions, settles their acks,
// nacks, rejects and extensions against the queue, sweeps lapsed leases, and keeps one dispatcher
// per subscription that has streams here.
import { Consumer, type DeliverySink, type SettleStatus, type Window } from "./consumer.ts";
import { MeshError } from "./errors.ts";
import type { FailureOutcome, Lease, StoredEvent, Subscription } from "./model.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { DeliveryQueue, EventStore } from "./ports.ts";
import { failureOutcome } from "./retry-policy.ts";
import { checkExtendSeconds, checkNackDelay, checkReason } from "./settle-checks.ts";
import { releaseLeases, SubscriptionDispatcher, type WakeCause } from "./subscription-dispatcher.ts";
import { waitAtMost } from "./wait-at-most.ts";

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

export interface SettleResult {
  ackId: string;
  status: SettleStatus;
  /** Why a settle was refused, for the client. */
  message?: string;
}

const SWEEP_BATCH = 1_000;
/** The database's clock and ours differ a little: wake a moment after a due time, not before. */
const DUE_MARGIN_MS = 25;
/** Up to 100,000 lapsed leases a sweep; the rest go at the next. */
const SWEEP_MAX_BATCHES = 100;
/** A settle that finds the database unavailable is run again this soon, then less often. */
const SETTLE_RETRY_FIRST_MS = 50;
const SETTLE_RETRY_MAX_MS = 1_000;
/**
 * A settle goes on being run while the database is unavailable for its ack deadline or this long,
 * whichever is longer: a Postgres restart or a managed failover takes tens of seconds, and an ack
 * given up before the database is back means a redelivery.
 */
const SETTLE_OUTAGE_RETRY_MS = 60_000;
/**
 * After this broker last saw the database unavailable, its lapsed-lease sweeps wait this long, so
 * that settles held through the outage (retried at least once a second) land before the sweep
 * counts their leases as lapsed: a lease runs out by the database's clock, which went on during
 * the outage while nothing could be recorded.
 */
const SWEEP_GRACE_AFTER_OUTAGE_MS = 3_000;

export class DeliveryService {
  private readonly dispatchers = new Map<string, SubscriptionDispatcher>();
  private readonly consumers = new Set<Consumer>();
  private timers: NodeJS.Timeout[] = [];
  /**
   * Serving; or draining, which hands out nothing more and lasts until `giveUpAt` (ms since
   * epoch), when settles still retrying an unavailable database stop.
   */
  private lifecycle: { phase: "serving" } | { phase: "draining"; giveUpAt: number } = { phase: "serving" };
  /** Per subscription, the next time a retry or delayed event of it falls due. */
  private readonly dueWakeups = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  /** The lapsed-lease sweep in progress, if any. */
  private sweep: Promise<number> | undefined;
  /** Whether the fallback poll's question to the queue is still out (a slow database). */
  private polling = false;
  /** When a settle or sweep of this broker last found the database unavailable (ms since epoch). */
  private databaseLastUnavailableAt = 0;

  private get isDraining(): boolean {
    return this.lifecycle.phase === "draining";
  }

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

  open(subscription: Subscription, name: string, window: Window, sink: DeliverySink): Consumer {
    const consumer = new Consumer(subscription, name, window, sink);
    this.consumers.add(consumer);
    let dispatcher = this.dispatchers.get(subscription.name);
    if (!dispatcher || dispatcher.subscription.queue !== subscription.queue) {
      dispatcher = new SubscriptionDispatcher(subscription, this.queue, this.events, {
        observer: this.options.observer,
        onError: (error, sub) => this.options.onError(error, `dispatching ${sub.name}`),
        accepts: this.options.accepts,
        wakeAt: (name, atMs) => this.wakeAt([name], atMs),
      });
      this.dispatchers.set(subscription.name, dispatcher);
    }
    dispatcher.consumers.add(consumer);
    this.options.observer.consumers(subscription.name, 1);
    if (!this.isDraining) dispatcher.wake();
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
      await dispatcher.releaseWaiting();
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
    const extendedIds =
      leases.size > 0
        ? await this.whileUnavailable(consumer.subscription, () =>
            this.queue.extend(consumer.subscription.queue, [...leases.values()], seconds),
          )
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

  /** Changes the consumer's window; `bytes` left out keeps its byte window. */
  setWindow(consumer: Consumer, messages: number, bytes?: number): void {
    consumer.setWindow(messages, bytes);
    this.wake([consumer.subscription.name], "room");
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
      for (const dispatcher of this.dispatchers.values()) dispatcher.wake(cause);
      return;
    }
    for (const name of subscriptions) this.dispatchers.get(name)?.wake(cause);
  }

  /**
   * Wakes the dispatchers of these topics' subscriptions ("*" for all) that have streams here:
   * "events" after a publish, "work" when jobs were queued too (a redrive, a missed NOTIFY).
   */
  wakeTopics(topics: string[], cause: WakeCause = "events"): void {
    if (this.isDraining) return;
    const all = topics.includes("*");
    const wanted = new Set(topics);
    for (const dispatcher of this.dispatchers.values()) {
      if (all || wanted.has(dispatcher.subscription.topic)) dispatcher.wake(cause);
    }
  }

  /**
   * Stops handing out deliveries and waits up to `timeoutMs` for consumers to settle what they
   * hold; the caller then closes the streams, which releases the rest.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.lifecycle = { phase: "draining", giveUpAt: Date.now() + timeoutMs };
    for (const timer of this.timers) clearInterval(timer);
    for (const { timer } of this.dueWakeups.values()) clearTimeout(timer);
    this.dueWakeups.clear();
    // A dispatch pass stuck on a database that went away must not hold the shutdown.
    await waitAtMost(Promise.all([...this.dispatchers.values()].map((d) => d.idle())), timeoutMs);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && [...this.consumers].some((c) => c.outstanding > 0 || c.settling > 0)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitAtMost(this.sweep, timeoutMs);
  }

  /**
   * Fails every lapsed lease of every subscription, wherever its stream was (a dead broker's too),
   * by the subscription's retry policy. One broker of the mesh sweeps at a time (the others would
   * only race it for the same rows), in batches until no lapsed lease is left, so a consumer or
   * broker that dies holding 10,000 leases has them back within a sweep. Settles are fenced to the
   * attempt all the same.
   */
  sweepLapsed(): Promise<number> {
    if (this.isDraining || this.inOutageGrace()) return Promise.resolve(0);
    this.sweep ??= this.queue
      .exclusively(() => this.sweepAllLapsed())
      .then(
        (failed) => failed ?? 0,
        (error: unknown) => {
          this.noteIfUnavailable(error);
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
    for (let batch = 0; batch < SWEEP_MAX_BATCHES && !this.isDraining; batch++) {
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
        const settled = await this.fail(
          sub,
          leases.map((lease) => failureOutcome(sub, lease, { error: "lease expired" })),
        );
        settledNow += settled.size;
        if (settled.size > 0) this.wake([name]);
      }
      failed += settledNow;
      // A short batch was the last; one that settled nothing would only come back the same.
      if (lapsed.length < SWEEP_BATCH || settledNow === 0) break;
    }
    return failed;
  }

  /** Settles failures through the queue and counts the ones that ended as dead letters. */
  private async fail(subscription: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    const settled = await this.queue.fail(subscription, outcomes);
    const delays = outcomes.flatMap((o) =>
      "retryAfterSeconds" in o && o.retryAfterSeconds > 0 && settled.has(o.lease.jobId)
        ? [o.retryAfterSeconds]
        : [],
    );
    if (delays.length > 0) this.wakeAt([subscription.name], Date.now() + Math.min(...delays) * 1000);
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
        this.wake([consumer.subscription.name]);
        throw error;
      } finally {
        consumer.settling--;
      }
      // Settling frees window: the dispatcher may now hand out more (and a nack puts work back).
      this.wake([consumer.subscription.name], done === "nacked" ? "work" : "room");
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
        const unavailable = this.noteIfUnavailable(error);
        const drainEnds =
          this.lifecycle.phase === "draining" ? this.lifecycle.giveUpAt : Number.POSITIVE_INFINITY;
        if (!unavailable || Date.now() + wait >= Math.min(giveUpAt, drainEnds)) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait).unref());
      }
    }
  }

  /** Whether the error says the database is unavailable; if so, remembers when. */
  private noteIfUnavailable(error: unknown): boolean {
    const unavailable = error instanceof MeshError && error.code === "unavailable";
    if (unavailable) this.databaseLastUnavailableAt = Date.now();
    return unavailable;
  }

  /** Within the grace after an outage this broker saw, in which held settles land before sweeps. */
  private inOutageGrace(): boolean {
    const grace = this.options.sweepGraceAfterOutageMs ?? SWEEP_GRACE_AFTER_OUTAGE_MS;
    return Date.now() - this.databaseLastUnavailableAt < grace;
  }

  private count(consumer: Consumer, results: SettleResult[]): void {
    const counts = new Map<SettleStatus, number>();
    for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    for (const [status, count] of counts)
      this.options.observer.settled(consumer.subscription.name, status, count);
  }

  /**
   * The fallback poll: finds what no wake-up announced (a lost NOTIFY, another broker's retry or
   * delayed event falling due, a lapsed lease put back). It asks the queue once which subscriptions
   * with free window have deliveries due, and wakes only those. Waking every dispatcher made each
   * fetch, mostly for nothing: with 100 subscriptions, 100 fetches a second sharing one group commit
   * (300 ms a round, bench (d)), which delivery to the subscriptions with work waited behind.
   */
  private poll(): void {
    const now = Date.now();
    for (const consumer of this.consumers) consumer.expireLapsed(now);
    if (this.polling || this.isDraining) return;
    const hungry = [...this.dispatchers.values()].filter((dispatcher) => dispatcher.free > 0);
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
