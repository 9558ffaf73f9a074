// The delivery states of every subscription, and the one module that changes them (issue 21): the
// cursor, the leased batches and the subscription's pg-boss queue are written here and nowhere
// else (catalog-store.ts and dead-letter-store.ts call the methods below for a policy update, a
// seek, a redrive, a release). Each transition is one named statement in queries/cursors.ts,
// queries/lease-batches.ts or queries/jobs.ts, or a pg-boss call; every settle is fenced to the
// attempt it names (a job's retry_count, a batch slot's pending bit).
//
// A delivery of an event to a subscription is in exactly one state:
//
//   state            held as                                   goes, by
//   backlog          an event after the cursor                 lease (advanceCursor): leased in a batch,
//                                                              a leased job (acked_retention > 0),
//                                                              scheduled, or skipped by the filter
//   leased (batch)   a pending bit of a lease_batches row      ack: done; nack, closed stream, lapse:
//                                                              retrying; extend: leased (job); reject
//                                                              or last attempt: dead letter; seek: dropped
//   scheduled        pg-boss `created` (due later, or queued   fetch once due and its key is free:
//                    behind its ordering key)                  leased (job); seek: dropped
//   retrying         pg-boss `retry`, due after the backoff    fetch: leased (job), next attempt; seek: dropped
//   leased (job)     pg-boss `active`                          ack: done; nack, closed stream, lapse:
//                                                              retrying; extend: leased (job); reject or
//                                                              last attempt: dead letter, or parked on
//                                                              an ordered subscription; seek: dropped
//   parked           pg-boss `failed`, its key held back       redrive: scheduled at the head of its key;
//                                                              release or purge: gone (the key flows)
//   dead letter      a pgmesh.dead_letters row                 redrive (once): scheduled
//   done             deleted (or `completed` for the
//                    subscription's acked_retention)
//
// pg-boss keeps its own pool (node-postgres) for fetch and its maintenance; settles run on our
// postgres.js transactions through its `db` option, so that a delivery's state and pgmesh's own rows
// (failures, dead letters, events) change together or not at all. See docs/architecture.md for the
// driver measurement.

import { randomUUID } from "node:crypto";
import { PgBoss, type Db as PgBossDb } from "pg-boss";
import type {
  FailureOutcome,
  Lease,
  LeaseHolding,
  ScheduledDelivery,
  Subscription,
} from "../delivery/model.ts";
import type { DeliveryQueue } from "../delivery/ports.ts";
import {
  type DatabaseTimeouts,
  poolTimeouts,
  type Sql,
  type TransactionSql,
  transaction,
  withSessionLock,
} from "./database.ts";
import { GroupCommit, type GroupResult } from "./group-commit.ts";
import {
  advanceCursor,
  type CursorRead,
  insertCursor,
  seekCursor,
  selectAfterCursors,
  selectQueuesBehind,
} from "./queries/cursors.ts";
import { forgetFailures, insertDeadLetters, recordFailures } from "./queries/failures.ts";
import {
  applyPolicyToQueuedJobs,
  extendLeases,
  parkJobs,
  releaseParked,
  selectLapsed,
  selectQueuesWithDueJobs,
  setRetryDelays,
  unparkAsNew,
} from "./queries/jobs.ts";
import { insertSlotJobs, selectLapsedSlots, takeSlots } from "./queries/lease-batches.ts";

export interface JobQueueOptions {
  connectionString: string;
  /** How often pg-boss's own expiry pass runs: a backstop behind the broker's lease sweeper. */
  monitorIntervalSeconds: number;
  timeouts: DatabaseTimeouts;
  /**
   * How often pg-boss deletes acked deliveries past their subscription's acked retention. Its
   * default is 24 h, which would make a short acked retention mean up to a day.
   */
  maintenanceIntervalSeconds: number;
  onError: (error: unknown) => void;
}

/** A delivery job's payload: the event's internal key, kept tiny on purpose. */
interface DeliveryData {
  e: string;
}

export interface NewDelivery {
  eventSeq: string;
  startAfter?: Date | undefined;
  /** Given on ordered subscriptions: time-ordered, so a key's jobs keep publish order. */
  id?: string | undefined;
  orderingKey?: string | undefined;
}

const toJobInsert = (d: NewDelivery) => ({
  data: { e: d.eventSeq } satisfies DeliveryData,
  ...(d.startAfter ? { startAfter: d.startAfter } : {}),
  ...(d.id ? { id: d.id } : {}),
  ...(d.orderingKey ? { singletonKey: d.orderingKey } : {}),
});

// pg-boss never decides a delivery's fate: the broker dead-letters by its own policy (which can
// change after deliveries were queued), so pg-boss's own retry limit is out of reach.
const UNBOUNDED_RETRIES = 2_000_000_000;
// Any constant works; it only has to be the same for every broker (migrate.ts and upkeep.ts use
// their own).
const SWEEP_LOCK = 7_245_031_003;

/**
 * pg-boss's `db` option on a postgres.js transaction (or the pool, for a single statement).
 * `prepare` runs pg-boss's statements as prepared statements, parsed and planned once per
 * connection instead of at every call. Only for the settles (complete, deleteJob, fail): their
 * text is the same for every queue (settle-statements.test.ts checks it), so a connection holds a
 * few of them. pg-boss writes the queue's name into the text of its fetch, which would prepare one
 * statement per subscription on every connection, so fetches are not prepared (their planning,
 * about 1 ms, is small beside the 500-row UPDATE). Measured in bench (d), 1,000 streams: the ack's
 * DELETE took 0.22 ms to plan and 0.05 ms to run, 2.3 s of Postgres's time in 20 s.
 */
export const onTransaction = (tx: TransactionSql | Sql, { prepare = false } = {}): PgBossDb => ({
  executeSql: async (text, values) => ({
    rows: await tx.unsafe(text, (values ?? []) as never[], { prepare }),
  }),
});
/** The settles' pg-boss statements, prepared (see onTransaction). */
const SETTLE = { prepare: true } as const;

interface Completion {
  queue: string;
  deleteOnAck: boolean;
  leases: Lease[];
}

/**
 * How every fetch asks pg-boss for deliveries. `groupConcurrency` changes nothing for our jobs (they
 * have no group) but makes pg-boss claim the chosen ids as one array (an InitPlan) instead of joining
 * them to the queue's rows: on statistics that do not know a queue yet (a new subscription, after
 * an ANALYZE by our upkeep or autovacuum), the join re-read the whole queue per claimed job, 2.2 s
 * for 500 of 20,000 (test/integration/fetch-plan.test.ts), stalling deliveries for seconds.
 */
export const FETCH_OPTIONS = { groupConcurrency: 1 } as const;

/** Ack batches committing at once; acks that arrive meanwhile wait for the next. */
const ACK_GROUPS_IN_FLIGHT = 2;
const ACK_GROUP_MAX_LEASES = 10_000;
/** Likewise for the fetches of the subscriptions' dispatchers. */
const FETCH_GROUPS_IN_FLIGHT = 2;
const FETCH_GROUP_MAX_LEASES = 10_000;
/** Likewise for their cursor reads (one statement a group) and advances (one transaction a group). */
const CURSOR_GROUPS_IN_FLIGHT = 2;
const CURSOR_GROUP_MAX_EVENTS = 10_000;

interface CursorAdvance {
  queue: string;
  from: string;
  to: string;
  deliveries: ScheduledDelivery[];
  holding: LeaseHolding;
}

export class JobQueue implements DeliveryQueue {
  private readonly completions = new GroupCommit<Completion, Set<string>>(
    (items) => this.completeGroup(items),
    { maxInFlight: ACK_GROUPS_IN_FLIGHT, maxWeight: ACK_GROUP_MAX_LEASES },
  );

  private readonly fetches = new GroupCommit<{ queue: string; limit: number }, Lease[]>(
    (items) => this.fetchGroup(items),
    { maxInFlight: FETCH_GROUPS_IN_FLIGHT, maxWeight: FETCH_GROUP_MAX_LEASES },
  );

  private readonly cursorReads = new GroupCommit<{ queue: string; limit: number }, CursorRead | undefined>(
    async (items) => {
      const reads = await selectAfterCursors(this.sql, items);
      return items.map((item) => ({ ok: true, value: reads.get(item.queue) }));
    },
    { maxInFlight: CURSOR_GROUPS_IN_FLIGHT, maxWeight: CURSOR_GROUP_MAX_EVENTS },
  );

  private readonly cursorAdvances = new GroupCommit<CursorAdvance, Map<string, Lease> | undefined>(
    (items) => this.advanceGroup(items),
    { maxInFlight: CURSOR_GROUPS_IN_FLIGHT, maxWeight: CURSOR_GROUP_MAX_EVENTS },
  );

  private constructor(
    readonly boss: PgBoss,
    private readonly sql: Sql,
  ) {}

  static async start(sql: Sql, options: JobQueueOptions): Promise<JobQueue> {
    const boss = new PgBoss({
      connectionString: options.connectionString,
      schema: "pgboss",
      application_name: "pgmesh-pgboss",
      max: 6,
      schedule: false,
      supervise: true,
      superviseIntervalSeconds: options.monitorIntervalSeconds,
      monitorIntervalSeconds: options.monitorIntervalSeconds,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds,
      registerInstance: false,
      ...poolTimeouts(options.timeouts),
    });
    boss.on("error", options.onError);
    await boss.start();
    return new JobQueue(boss, sql);
  }

  async stop(): Promise<void> {
    await this.boss.stop({ graceful: false, close: true });
  }

  async createQueue(
    queue: string,
    options: { leaseSeconds: number; ordering: boolean; ackedRetentionSeconds: number },
  ) {
    await this.boss.createQueue(queue, {
      // key_strict_fifo: per singleton key, the oldest job goes first and alone; a key whose job
      // is active, waiting for a retry or failed holds back the rest of that key only.
      policy: options.ordering ? "key_strict_fifo" : "standard",
      expireInSeconds: options.leaseSeconds,
      retryLimit: UNBOUNDED_RETRIES,
      retryDelay: 0,
      deleteAfterSeconds: deletionSeconds(options.ackedRetentionSeconds),
      // Undelivered events wait a year at most.
      retentionSeconds: 60 * 60 * 24 * 365,
    });
  }

  async setPolicy(queue: string, leaseSeconds: number, ackedRetentionSeconds: number): Promise<void> {
    await this.boss.updateQueue(queue, {
      expireInSeconds: leaseSeconds,
      deleteAfterSeconds: deletionSeconds(ackedRetentionSeconds),
    });
  }

  async deleteQueue(queue: string): Promise<void> {
    await this.boss.deleteQueue(queue);
  }

  /** Starts a new subscription's backlog after `position` (in the caller's transaction). */
  openCursor(tx: TransactionSql, queue: string, topic: string, position: string): Promise<void> {
    return insertCursor(tx, queue, topic, position);
  }

  /**
   * Moves the cursor to `position` and drops every delivery that is pending, retrying, scheduled
   * or leased (in a job or a batch); returns how many. Parked keys and dead letters stay.
   */
  seek(tx: TransactionSql, queue: string, position: string): Promise<number> {
    return seekCursor(tx, queue, position);
  }

  /** A changed policy, for deliveries already queued: lease length and acked retention. */
  applyPolicy(tx: TransactionSql, queue: string, leaseSeconds: number, ackedRetentionSeconds: number) {
    return applyPolicyToQueuedJobs(tx, queue, leaseSeconds, deletionSeconds(ackedRetentionSeconds));
  }

  /** Parked deliveries back at the head of their keys as first attempts (a redrive); their ids. */
  unpark(tx: TransactionSql, queue: string, jobIds: string[], ackedRetentionSeconds: number) {
    return unparkAsNew(tx, queue, jobIds, deletionSeconds(ackedRetentionSeconds));
  }

  /** Deletes parked deliveries (by key or job id): their keys' later events flow again. */
  releaseParked(tx: TransactionSql, queue: string, by: { keys?: string[]; jobIds?: string[] }) {
    return releaseParked(tx, queue, by);
  }

  /**
   * Queues one delivery per event on `queue`, inside the caller's transaction (a redrive; publishes
   * queue theirs in the publish statement, queries/publish.ts).
   */
  async enqueue(tx: TransactionSql, queue: string, deliveries: NewDelivery[]): Promise<void> {
    if (deliveries.length === 0) return;
    await this.boss.insert(queue, deliveries.map(toJobInsert), { db: onTransaction(tx) });
  }

  /**
   * Leases for one dispatcher. The fetches of every subscription on this broker are grouped like
   * acks: those that arrive while others commit share the next transaction, so a broker with many
   * busy subscriptions pays one commit (one WAL flush) for a round of fetches, not one each.
   */
  lease(queue: string, limit: number): Promise<Lease[]> {
    return this.fetches.submit({ queue, limit }, limit);
  }

  /**
   * Reads a subscription's cursor and the events after it. The reads of every dispatcher on this
   * broker are grouped like fetches: those that arrive while others run share the next statement.
   */
  readCursor(queue: string, limit: number): Promise<CursorRead | undefined> {
    return this.cursorReads.submit({ queue, limit }, limit);
  }

  /**
   * Moves a cursor and writes its deliveries. Grouped too: the advances that arrive while others
   * commit share the next transaction, so a broker with many subscriptions each leasing a few
   * events (bench (d): 100 subscriptions at 10 events/s) pays a commit per round, not per lease.
   */
  advanceCursor(
    queue: string,
    from: string,
    to: string,
    deliveries: ScheduledDelivery[],
    holding: LeaseHolding,
  ): Promise<Map<string, Lease> | undefined> {
    return this.cursorAdvances.submit(
      { queue, from, to, deliveries, holding },
      Math.max(1, deliveries.length),
    );
  }

  private async advanceGroup(items: CursorAdvance[]): Promise<GroupResult<Map<string, Lease> | undefined>[]> {
    const advance = (sql: Sql | TransactionSql, a: CursorAdvance) =>
      advanceCursor(sql, a.queue, a.from, a.to, a.deliveries, a.holding);
    if (items.length === 1) return [{ ok: true, value: await advance(this.sql, items[0] as CursorAdvance) }];
    // In queue order: two brokers' groups lock the cursors they share in the same order, so they
    // wait for each other instead of deadlocking. Sent at once (postgres.js pipelines them).
    const order = items.map((_, i) => i).sort((a, b) => compare(items[a]?.queue, items[b]?.queue));
    const values = await transaction(this.sql, (tx) =>
      Promise.all(order.map((i) => advance(tx, items[i] as CursorAdvance))),
    );
    const byItem = new Map(order.map((i, k) => [i, values[k]]));
    return items.map((_, i) => ({ ok: true, value: byItem.get(i) }));
  }

  /** Queues with a job due now or a cursor behind its topic. */
  async queuesWithWork(queues: string[]): Promise<Set<string>> {
    if (queues.length === 0) return new Set();
    const [due, behind] = await Promise.all([
      selectQueuesWithDueJobs(this.sql, queues),
      selectQueuesBehind(this.sql, queues),
    ]);
    return new Set([...due, ...behind]);
  }

  private async queuesWithDueJobs(queues: string[]): Promise<Set<string>> {
    return new Set(await selectQueuesWithDueJobs(this.sql, queues));
  }

  /**
   * One round of fetches. A round of several first asks, in one index-only statement, which of its
   * queues have a delivery due, and fetches only from those: the rest answer empty without a
   * statement. Waking many dispatchers at once (a thousand streams reconnecting to a restarted
   * broker) made rounds of 30 to 60 fetches that all came back empty, each round a transaction of
   * as many pg-boss fetches one after another, up to half a second. pg-boss fetches a subset of
   * what the question finds (for an ordered queue, less), so a queue it passes over has nothing to
   * fetch; a delivery that lands after it asked is announced by its publish's wake-up as usual.
   */
  private async fetchGroup(items: { queue: string; limit: number }[]): Promise<GroupResult<Lease[]>[]> {
    const due = items.length > 1 ? await this.queuesWithDueJobs(items.map((i) => i.queue)) : undefined;
    const wanted = due ? items.filter((item) => due.has(item.queue)) : items;
    const fetchAll = (db: PgBossDb) =>
      Promise.all(
        wanted.map(async ({ queue, limit }): Promise<Lease[]> => {
          const jobs = await this.boss.fetch<DeliveryData>(queue, { ...FETCH_OPTIONS, batchSize: limit, db });
          return jobs.map((job) => ({
            jobId: job.id,
            retryCount: job.retryCount,
            eventSeq: String(job.data.e),
          }));
        }),
      );
    const fetched =
      wanted.length === 0
        ? []
        : wanted.length === 1
          ? await fetchAll(onTransaction(this.sql))
          : await transaction(this.sql, (tx) => fetchAll(onTransaction(tx)));
    const byItem = new Map(wanted.map((item, i) => [item, fetched[i] ?? []]));
    return items.map((item) => ({ ok: true, value: byItem.get(item) ?? [] }));
  }

  /**
   * Acks. Completions of every stream and subscription on this broker are group-committed: those
   * that arrive while others commit share the next statement batch (River's BatchCompleter idea).
   */
  complete(subscription: Subscription, leases: Lease[]): Promise<Set<string>> {
    if (leases.length === 0) return Promise.resolve(new Set());
    const { queue, ackedRetentionSeconds } = subscription;
    return this.completions.submit(
      { queue, deleteOnAck: ackedRetentionSeconds === 0, leases },
      leases.length,
    );
  }

  private async completeGroup(items: Completion[]): Promise<GroupResult<Set<string>>[]> {
    const byQueue = new Map<string, { deleteOnAck: boolean; leases: Lease[] }>();
    const slots: Lease[] = [];
    for (const { queue, deleteOnAck, leases } of items) {
      const entry = byQueue.get(queue) ?? { deleteOnAck, leases: [] };
      for (const lease of leases) (lease.slot ? slots : entry.leases).push(lease);
      if (entry.leases.length > 0) byQueue.set(queue, entry);
    }
    // A batch's slots are acked by clearing their pending bits: one statement for every batch of
    // the group, beside the jobs' settles.
    const [slotsTaken, jobsSettled] = await Promise.all([
      slots.length > 0 ? takeSlots(this.sql, slots) : new Set<string>(),
      byQueue.size > 0 ? this.completeJobs(items, byQueue) : new Set<string>(),
    ]);
    return items.map((item) => ({
      ok: true,
      value: new Set(
        item.leases.filter((l) => slotsTaken.has(l.jobId) || jobsSettled.has(l.jobId)).map((l) => l.jobId),
      ),
    }));
  }

  private async completeJobs(
    items: Completion[],
    byQueue: Map<string, { deleteOnAck: boolean; leases: Lease[] }>,
  ): Promise<Set<string>> {
    // Only a delivery that failed before has a failure history to forget (a failure always
    // counts an attempt), so a first-attempt ack is one statement and needs no transaction.
    const retried = items.flatMap((i) => i.leases).filter((l) => l.retryCount > 0 && !l.slot);
    const completeAll = async (db: PgBossDb) => {
      const settled = new Set<string>();
      // Without acked retention an ack deletes the job: one fenced DELETE, instead of an UPDATE
      // now and a DELETE at the next maintenance pass (and no completed rows for fetch to skip).
      const perQueue = await Promise.all(
        [...byQueue].map(([queue, { deleteOnAck, leases }]) =>
          deleteOnAck
            ? this.boss.deleteJob(queue, leases.map(toAttempt), { db })
            : this.boss.complete(queue, leases.map(toAttempt), null, { db }),
        ),
      );
      for (const result of perQueue) for (const id of settledIds(result)) settled.add(id);
      return settled;
    };
    return byQueue.size === 1 && retried.length === 0
      ? await completeAll(onTransaction(this.sql, SETTLE))
      : await transaction(this.sql, async (tx) => {
          const done = await completeAll(onTransaction(tx, SETTLE));
          await forgetFailures(
            tx,
            retried.filter((l) => done.has(l.jobId)).map((l) => l.jobId),
          );
          return done;
        });
  }

  async fail(subscription: Subscription, outcomes: FailureOutcome[]): Promise<Set<string>> {
    if (outcomes.length === 0) return new Set();
    const queue = subscription.queue;
    const fromBatches = outcomes.filter((o) => o.lease.slot);
    const ofJobs = outcomes.filter((o) => !o.lease.slot);
    const retries = ofJobs.flatMap((o) => ("retryAfterSeconds" in o ? [o] : []));
    const deadLetters = ofJobs.flatMap((o) => ("deadLetter" in o ? [o] : []));
    return transaction(this.sql, async (tx) => {
      const db = onTransaction(tx, SETTLE);
      const settled = await this.failSlots(tx, subscription, fromBatches);
      if (retries.length > 0) {
        await setRetryDelays(
          tx,
          queue,
          retries.map((o) => ({ lease: o.lease, delaySeconds: o.retryAfterSeconds })),
        );
        const retried = settledIds(
          await this.boss.fail(
            queue,
            retries.map((o) => toAttempt(o.lease)),
            null,
            { db },
          ),
        );
        await recordFailures(
          tx,
          subscription.name,
          retries
            .filter((o) => retried.has(o.lease.jobId))
            .map((o) => ({ jobId: o.lease.jobId, error: o.error })),
        );
        for (const id of retried) settled.add(id);
      }
      if (deadLetters.length > 0) {
        // On an ordered subscription a keyed delivery stays behind as a failed job that parks its
        // key; any other leaves the live queue. Either way its dead-letter row is written with it.
        const leases = deadLetters.map((o) => o.lease);
        const parked = subscription.ordering ? await parkJobs(tx, queue, leases) : [];
        const parkedKey = new Map(parked.map((p) => [p.id, p.key]));
        const rest = deadLetters.filter((o) => !parkedKey.has(o.lease.jobId)).map((o) => toAttempt(o.lease));
        const removed =
          rest.length > 0 ? settledIds(await this.boss.deleteJob(queue, rest, { db })) : new Set();
        const moved = deadLetters.filter((o) => removed.has(o.lease.jobId) || parkedKey.has(o.lease.jobId));
        await insertDeadLetters(
          tx,
          subscription.name,
          moved.map((o) => ({
            jobId: o.lease.jobId,
            eventSeq: o.lease.eventSeq,
            attempts: o.lease.retryCount + 1,
            reason: o.deadLetter,
            error: o.error,
            parkedKey: parkedKey.get(o.lease.jobId),
          })),
        );
        const done = moved.map((o) => o.lease.jobId);
        await forgetFailures(tx, done);
        for (const id of done) settled.add(id);
      }
      return settled;
    });
  }

  /**
   * Failures of first attempts held in batches: each slot is taken from its batch and becomes a
   * retry job (its failure recorded on it) or a dead letter, in the caller's transaction. Returns
   * the job ids of the leases settled.
   */
  private async failSlots(
    tx: TransactionSql,
    subscription: Subscription,
    outcomes: FailureOutcome[],
  ): Promise<Set<string>> {
    if (outcomes.length === 0) return new Set();
    const taken = await takeSlots(
      tx,
      outcomes.map((o) => o.lease),
    );
    const settled = outcomes.filter((o) => taken.has(o.lease.jobId));
    const retries = settled.flatMap((o) => ("retryAfterSeconds" in o ? [o] : []));
    const jobIds = await insertSlotJobs(tx, subscription.queue, retries);
    await recordFailures(
      tx,
      subscription.name,
      retries.map((o) => ({ jobId: jobIds.get(o.lease.jobId) as string, error: o.error })),
    );
    await insertDeadLetters(
      tx,
      subscription.name,
      settled.flatMap((o) =>
        "deadLetter" in o
          ? [
              {
                jobId: randomUUID(),
                eventSeq: o.lease.eventSeq,
                attempts: o.lease.retryCount + 1,
                reason: o.deadLetter,
                error: o.error,
              },
            ]
          : [],
      ),
    );
    return new Set(settled.map((o) => o.lease.jobId));
  }

  async extend(queue: string, leases: Lease[], seconds: number): Promise<Map<string, Lease>> {
    const extended = new Map<string, Lease>();
    const jobs = leases.filter((l) => !l.slot);
    const slots = leases.filter((l) => l.slot);
    if (jobs.length > 0) {
      const ids = new Set(await extendLeases(this.sql, queue, jobs, seconds));
      for (const lease of jobs) if (ids.has(lease.jobId)) extended.set(lease.jobId, lease);
    }
    if (slots.length > 0) {
      // A batch has one deadline for all its slots: an extended slot leaves it for a job of its
      // own, leased to the same stream until `seconds` from now.
      const jobIds = await transaction(this.sql, async (tx) => {
        const taken = await takeSlots(tx, slots);
        return insertSlotJobs(
          tx,
          queue,
          slots.filter((l) => taken.has(l.jobId)).map((lease) => ({ lease, leaseSeconds: seconds })),
        );
      });
      for (const lease of slots) {
        const jobId = jobIds.get(lease.jobId);
        if (!jobId) continue;
        const { slot: _, ...rest } = lease;
        extended.set(lease.jobId, { ...rest, jobId, retryCount: 0 });
      }
    }
    return extended;
  }

  async findLapsed(limit: number): Promise<{ subscription: string; lease: Lease }[]> {
    const jobs = await selectLapsed(this.sql, limit);
    if (jobs.length >= limit) return jobs;
    return [...jobs, ...(await selectLapsedSlots(this.sql, limit - jobs.length))];
  }

  exclusively<T>(work: () => Promise<T>): Promise<T | undefined> {
    return withSessionLock(this.sql, SWEEP_LOCK, () => work());
  }
}

const toAttempt = (lease: Lease) => ({ id: lease.jobId, retryCount: lease.retryCount });

const compare = (a = "", b = "") => (a < b ? -1 : a > b ? 1 : 0);

/** pg-boss reads deleteAfterSeconds 0 as "keep for ever"; our 0 means "delete promptly". */
export const deletionSeconds = (ackedRetentionSeconds: number) => Math.max(1, ackedRetentionSeconds);

function settledIds(result: unknown): Set<string> {
  const settled = (result as { settled?: string[] }).settled;
  return new Set(settled ?? []);
}
