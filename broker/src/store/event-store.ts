// Publishing and reading events. A publish group (concurrent publishes, any topics: see
// group-commit.ts) is one statement (queries/publish.ts): each new event is stored once, one
// pg-boss job per (new event, subscription whose filter accepts it) is queued, and one NOTIFY
// wakes the other brokers. One round trip and one commit, however many topics and subscriptions.
// Lease at publish: for a subscription whose streams on this broker keep up, the jobs go in
// already leased to them (within the window they reserved) and are handed over after the commit,
// so a delivery costs no fetch and no event load.
import { v7 as uuidv7 } from "uuid";
import { notFound } from "../delivery/errors.ts";
import type { EventEnvelope, Lease, PublishOutcome, StoredEvent, Subscription } from "../delivery/model.ts";
import type { EventStore, Handoff, HandoffReservation } from "../delivery/ports.ts";
import type { Sql, TransactionSql } from "./database.ts";
import { GroupCommit, type GroupResult } from "./group-commit.ts";
import { isStaleCatalog, PublishCatalog } from "./publish-catalog.ts";
import * as events from "./queries/events.ts";
import { topicEventKey } from "./queries/events.ts";
import {
  OWN_KEY,
  type PublishStatement,
  type PublishStatementResult,
  publishStatement,
} from "./queries/publish.ts";
import { WAKEUP_CHANNEL, wakeupPayload } from "./wakeups.ts";

type Accepts = (subscription: Subscription, event: EventEnvelope) => boolean;
type Published = { outcomes: PublishOutcome[]; subscriptions: string[] };
interface PublishRequest {
  topic: string;
  batch: EventEnvelope[];
  accepts: Accepts;
  handoff: Handoff | undefined;
}

/** Publishes committing at once; the next group fills while they flush. */
const PUBLISH_GROUPS_IN_FLIGHT = 2;
/** Event loads running at once, and the most events one load query reads. */
const LOADS_IN_FLIGHT = 2;
const LOAD_GROUP_MAX_EVENTS = 2_000;
/** Events in one publish statement at most (a single larger request still goes alone). */
const PUBLISH_GROUP_MAX_EVENTS = 5_000;
/**
 * Lease at publish for at most this many events of one subscription in one statement; more go
 * through the queue. Measured (bench (a), batches of 500, one stream): leasing all 500 in the
 * statement ran end to end at 6.7k ev/s against 9.2k with this bound, while single-event publishes
 * kept the lower latency. Big batches amortise a fetch well; small publishes are what it is for.
 */
const LEASE_AT_PUBLISH_MAX = 64;
/** A group whose routing list went stale (a subscription created or deleted) is tried again. */
const STALE_CATALOG_RETRIES = 3;

export class PostgresEventStore implements EventStore {
  private readonly commits: GroupCommit<PublishRequest, Published>;
  private readonly loads = new GroupCommit<string[], Map<string, StoredEvent>>(
    (requests) => this.loadGroup(requests),
    {
      maxInFlight: LOADS_IN_FLIGHT,
      maxWeight: LOAD_GROUP_MAX_EVENTS,
    },
  );
  readonly catalog: PublishCatalog;

  constructor(
    private readonly sql: Sql,
    private readonly brokerId: string,
  ) {
    this.catalog = new PublishCatalog(sql);
    this.commits = new GroupCommit((requests) => this.publishGroup(requests), {
      maxInFlight: PUBLISH_GROUPS_IN_FLIGHT,
      maxWeight: PUBLISH_GROUP_MAX_EVENTS,
    });
  }

  /** Publishes in a statement shared with the publishes that arrive while others commit. */
  publish(topic: string, batch: EventEnvelope[], accepts: Accepts, handoff?: Handoff): Promise<Published> {
    return this.commits.submit({ topic, batch, accepts, handoff }, batch.length);
  }

  /**
   * The publish, inside the caller's transaction (the outbox relay's). The routing list is read
   * in that transaction; should it still go stale before the statement, the statement fails and
   * with it the caller's transaction, which the relay tries again.
   */
  async publishIn(
    tx: TransactionSql,
    topic: string,
    batch: EventEnvelope[],
    accepts: Accepts,
  ): Promise<Published> {
    this.catalog.forget([topic]);
    // No lease at publish: the commit is the caller's, and nothing would hand the leases over.
    const requests = [{ topic, batch, accepts, handoff: undefined }];
    const [result] = await this.publishWith(tx, requests, await this.catalog.of([topic], tx));
    if (!result?.ok) throw result?.error;
    return result.value;
  }

  private async publishGroup(requests: PublishRequest[]): Promise<GroupResult<Published>[]> {
    const topics = [...new Set(requests.map((r) => r.topic))];
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.publishWith(this.sql, requests, await this.catalog.of(topics));
      } catch (error) {
        if (!isStaleCatalog(error) || attempt >= STALE_CATALOG_RETRIES) throw error;
        this.catalog.forget(topics);
      }
    }
  }

  /**
   * Several publish requests, on any topics, in one statement. Events are taken in arrival order,
   * so a repeat across requests resolves to the first. A request on a missing topic fails alone.
   */
  private async publishWith(
    sql: Sql | TransactionSql,
    requests: PublishRequest[],
    subsByTopic: Map<string, Subscription[]>,
  ): Promise<GroupResult<Published>[]> {
    // Repeats are duplicates of their first occurrence. The candidates are also kept by topic,
    // with their position, for the routing (a group may span many topics).
    const firstOccurrence = new Map<string, EventEnvelope>();
    const candidates: { topic: string; event: EventEnvelope }[] = [];
    const candidatesByTopic = new Map<string, { ord: number; event: EventEnvelope }[]>();
    for (const { topic, batch } of requests) {
      if (!subsByTopic.has(topic)) continue;
      for (const event of batch) {
        const key = topicEventKey(topic, event);
        if (firstOccurrence.has(key)) continue;
        firstOccurrence.set(key, event);
        const candidate = { ord: candidates.length, event };
        candidates.push({ topic, event });
        const list = candidatesByTopic.get(topic);
        if (list) list.push(candidate);
        else candidatesByTopic.set(topic, [candidate]);
      }
    }

    // Routing: a subscription without filter or order takes every event of its topic (one row
    // for all of them); the others name each event they take, ordered ones with time-ordered ids
    // because pg-boss orders a key's jobs by (created_on, id) and created_on is one value per
    // statement. A subscription whose streams here reserved window (never an ordered one: its
    // order is the queue's) names its events too, the first ones due now leased to them.
    const accepts = new Map(requests.map((r) => [r.topic, r.accepts]));
    const handoff = requests.find((r) => r.handoff)?.handoff;
    const statement: PublishStatement = {
      topics: [...subsByTopic.keys()],
      queues: [...subsByTopic.values()].flat().map((s) => s.queue),
      events: candidates,
      broadcast: [],
      picked: [],
      notify: undefined,
    };
    // The subscriptions with deliveries left in their queues, by topic (for the wake-ups).
    const routed = new Map<string, Set<string>>();
    const reservations = new Map<string, { sub: Subscription; reservation: HandoffReservation }>();
    const now = Date.now();
    for (const [topic, topicCandidates] of candidatesByTopic) {
      const accept = accepts.get(topic) as Accepts;
      const names = new Set<string>();
      routed.set(topic, names);
      for (const sub of subsByTopic.get(topic) ?? []) {
        const taken = sub.filter
          ? topicCandidates.filter(({ event }) => accept(sub, event))
          : topicCandidates;
        if (taken.length === 0) continue;
        const dueNow = sub.ordering ? 0 : taken.filter(({ event }) => !isDelayed(event, now)).length;
        const reservation =
          dueNow > 0 && dueNow <= LEASE_AT_PUBLISH_MAX ? handoff?.reserve(sub, dueNow) : undefined;
        if (reservation) reservations.set(sub.queue, { sub, reservation });
        if (!sub.filter && !sub.ordering && !reservation) {
          statement.broadcast.push({ topic, queue: sub.queue });
          names.add(sub.name);
          continue;
        }
        let toLease = reservation?.count ?? 0;
        for (const { ord, event } of taken) {
          const leased = toLease > 0 && !isDelayed(event, now);
          if (leased) toLease--;
          else names.add(sub.name);
          statement.picked.push({
            ord,
            queue: sub.queue,
            id: sub.ordering ? uuidv7() : undefined,
            // Ordered queues need a key on every job; an unkeyed event gets one of its own.
            key: sub.ordering ? event.orderingKey || OWN_KEY : undefined,
            leased,
          });
        }
      }
    }
    const woken = [...routed.values()].flatMap((names) => [...names]);
    if (woken.length > 0)
      statement.notify = { channel: WAKEUP_CHANNEL, payload: wakeupPayload(this.brokerId, woken) };

    const leasedAt = Date.now();
    let result: PublishStatementResult;
    try {
      result = await publishStatement(sql, statement);
    } catch (error) {
      for (const { reservation } of reservations.values()) reservation.complete([], leasedAt);
      throw error;
    }
    // The publishers are answered first: their responses do not wait for the deliveries' encoding.
    if (reservations.size > 0) setImmediate(() => handOver(result, candidates, reservations, leasedAt));
    const storedEvents = new Set(result.stored.map((s) => candidates[s.ord]?.event));
    // A subscription is woken only when its topic stored something.
    const storedTopics = new Set(result.stored.map((s) => candidates[s.ord]?.topic));

    return requests.map(({ topic, batch }): GroupResult<Published> => {
      if (!subsByTopic.has(topic)) return { ok: false, error: notFound(`topic ${topic} does not exist`) };
      const outcomes = batch.map((event) => ({
        id: event.id,
        duplicate: !(firstOccurrence.get(topicEventKey(topic, event)) === event && storedEvents.has(event)),
      }));
      const subscriptions = storedTopics.has(topic) ? [...(routed.get(topic) ?? [])] : [];
      return { ok: true, value: { outcomes, subscriptions } };
    });
  }

  /**
   * The events of leased deliveries. Loads of several dispatchers that arrive while others run
   * share the next query (the same batching as commits, for a read): a broker with many busy
   * subscriptions reads their events in a few statements, not one per dispatch.
   */
  loadEvents(seqs: string[]): Promise<Map<string, StoredEvent>> {
    if (seqs.length === 0) return Promise.resolve(new Map());
    return this.loads.submit(seqs, seqs.length);
  }

  private async loadGroup(requests: string[][]): Promise<GroupResult<Map<string, StoredEvent>>[]> {
    const rows = await events.selectEventsBySeq(this.sql, [...new Set(requests.flat())]);
    const bySeq = new Map(rows.map((row) => [row.seq, row]));
    return requests.map((seqs) => ({
      ok: true,
      value: new Map(seqs.flatMap((seq) => (bySeq.has(seq) ? [[seq, bySeq.get(seq) as StoredEvent]] : []))),
    }));
  }
}

/** An event whose deliver_after is still ahead: its jobs wait in the queue until then. */
const isDelayed = (event: EventEnvelope, now: number) =>
  event.deliverAfter !== undefined && event.deliverAfter.getTime() > now;

/** Hands the deliveries the statement leased to the streams that reserved window for them. */
function handOver(
  result: PublishStatementResult,
  candidates: { topic: string; event: EventEnvelope }[],
  reservations: Map<string, { sub: Subscription; reservation: HandoffReservation }>,
  leasedAt: number,
): void {
  const stored = new Map(result.stored.map((s) => [s.ord, s]));
  const byQueue = new Map<string, { lease: Lease; event: StoredEvent }[]>();
  for (const { ord, queue, jobId } of result.leased) {
    const row = stored.get(ord);
    const candidate = candidates[ord];
    // Never missing (a leased job's event was stored by the same statement); if it were, the
    // lease would lapse and the delivery come back, rather than the broker fail here.
    if (!row || !candidate) continue;
    const { seq, publishedAt } = row;
    const { topic, event } = candidate;
    const delivery = {
      lease: { jobId, retryCount: 0, eventSeq: seq, publishedAt },
      event: { ...event, seq, topic, publishedAt },
    };
    const list = byQueue.get(queue);
    if (list) list.push(delivery);
    else byQueue.set(queue, [delivery]);
  }
  for (const [queue, { reservation }] of reservations)
    reservation.complete(byQueue.get(queue) ?? [], leasedAt);
}
