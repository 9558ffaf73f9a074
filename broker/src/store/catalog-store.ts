// Topics and subscriptions in Postgres. A subscription owns a pg-boss queue (its deliveries with a
// schedule of their own), created before its row exists and dropped after its row is gone, and a
// cursor over its topic's events (its backlog not yet leased), created with its row.
import { randomBytes } from "node:crypto";
import { MeshError, notFound } from "../delivery/errors.ts";
import type {
  DeliveryPolicy,
  Page,
  ParkedKey,
  SeekResult,
  StartPosition,
  StoredEvent,
  Subscription,
  SubscriptionStats,
  Topic,
  TopicSchema,
} from "../delivery/model.ts";
import type { CatalogStore, TopicEventsFrom } from "../delivery/ports.ts";
import { type Sql, type TransactionSql, transaction } from "./database.ts";
import * as cursors from "./queries/cursors.ts";
import { countOpenDeadLetters, deadLetterIdsOfParkedJobs, detachParkedJobs } from "./queries/dead-letters.ts";
import * as events from "./queries/events.ts";
import { queueCounts, selectParked } from "./queries/jobs.ts";
import { batchCounts } from "./queries/lease-batches.ts";
import * as subscriptions from "./queries/subscriptions.ts";
import * as topics from "./queries/topics.ts";
import type { JobQueue } from "./queue.ts";
import { SUBSCRIPTION_CHANNEL, subscriptionChangePayload } from "./wakeups.ts";

export class PostgresCatalogStore implements CatalogStore {
  constructor(
    private readonly sql: Sql,
    private readonly queue: JobQueue,
  ) {}

  async createTopic(name: string, retentionSeconds: number): Promise<Topic> {
    const topic = await topics.insertTopic(this.sql, name, retentionSeconds);
    if (!topic) throw new MeshError("already_exists", `topic ${name} already exists`);
    return topic;
  }

  updateTopic(name: string, retentionSeconds: number): Promise<Topic | undefined> {
    return topics.updateTopicRetention(this.sql, name, retentionSeconds);
  }

  getTopic(name: string): Promise<Topic | undefined> {
    return topics.selectTopic(this.sql, name);
  }

  async listTopics(pageSize: number, after: string): Promise<Page<Topic>> {
    const rows = await topics.selectTopicsAfter(this.sql, after, pageSize + 1);
    return pageOf(rows, pageSize, (t) => t.name);
  }

  setTopicSchema(topic: string, schema: Omit<TopicSchema, "updatedAt"> | undefined): Promise<boolean> {
    return schema
      ? topics.upsertTopicSchema(this.sql, topic, schema)
      : topics.deleteTopicSchema(this.sql, topic);
  }

  getTopicSchema(topic: string): Promise<TopicSchema | undefined> {
    return topics.selectTopicSchema(this.sql, topic);
  }

  async deleteTopic(name: string): Promise<boolean> {
    return transaction(this.sql, async (tx) => {
      const subs = await topics.countSubscriptionsOf(tx, name);
      if (subs > 0) {
        throw new MeshError(
          "failed_precondition",
          `topic ${name} still has ${subs} subscription(s); delete them first`,
        );
      }
      return topics.deleteTopicRow(tx, name);
    });
  }

  async createSubscription(
    sub: {
      name: string;
      topic: string;
      ordering: boolean;
      filter: string;
      start: StartPosition;
    } & DeliveryPolicy,
  ): Promise<Subscription> {
    if (await subscriptions.selectSubscription(this.sql, sub.name)) {
      throw new MeshError("already_exists", `subscription ${sub.name} already exists`);
    }
    if (!(await topics.selectTopic(this.sql, sub.topic))) throw notFound(`topic ${sub.topic} does not exist`);
    // A fresh queue per incarnation: a subscription deleted and created again under the same name
    // must not inherit the old one's deliveries, nor another broker's cached queue settings. The
    // name is short and fixed in length because every job row carries it, in the heap and at the
    // head of each of pg-boss's indexes (five copies per job): with the subscription's name in it
    // (up to 100 characters) it cost up to 500 bytes per pending delivery. 64 random bits: no two
    // incarnations meet (one in 10^7 after a million). pgmesh.subscriptions maps it to the name.
    const queue = `s/${randomBytes(8).toString("hex")}`;
    await this.queue.createQueue(queue, {
      leaseSeconds: sub.ackDeadlineSeconds,
      ordering: sub.ordering,
      ackedRetentionSeconds: sub.ackedRetentionSeconds,
    });
    try {
      const row = await transaction(this.sql, async (tx) => {
        if (!(await topics.lockTopicShared(tx, sub.topic)))
          throw notFound(`topic ${sub.topic} does not exist`);
        const row = await subscriptions.insertSubscription(tx, { ...sub, queue });
        if (row)
          await this.queue.openCursor(tx, queue, sub.topic, await cursorBefore(tx, sub.topic, sub.start));
        return row;
      });
      if (!row) throw new MeshError("already_exists", `subscription ${sub.name} already exists`);
      return row;
    } catch (error) {
      await this.queue.deleteQueue(queue);
      throw error;
    }
  }

  getSubscription(name: string): Promise<Subscription | undefined> {
    return subscriptions.selectSubscription(this.sql, name);
  }

  async updateSubscription(name: string, policy: DeliveryPolicy): Promise<Subscription | undefined> {
    const updated = await transaction(this.sql, async (tx) => {
      const row = await subscriptions.updateSubscriptionPolicy(tx, name, policy);
      if (row) {
        await this.queue.applyPolicy(tx, row.queue, policy.ackDeadlineSeconds, policy.ackedRetentionSeconds);
        const change = subscriptionChangePayload({ name: row.name, queue: row.queue, kind: "updated" });
        await tx`SELECT pg_notify(${SUBSCRIPTION_CHANNEL}, ${change})`;
      }
      return row;
    });
    // New deliveries take these from the queue's settings.
    if (updated)
      await this.queue.setPolicy(updated.queue, policy.ackDeadlineSeconds, policy.ackedRetentionSeconds);
    return updated;
  }

  async seekSubscription(subscription: Subscription, to: StartPosition): Promise<SeekResult> {
    return transaction(this.sql, async (tx) => {
      const position = await cursorBefore(tx, subscription.topic, to);
      const dropped = await this.queue.seek(tx, subscription.queue, position);
      return { position: (BigInt(position) + 1n).toString(), dropped };
    });
  }

  async stats(subscription: Subscription): Promise<SubscriptionStats> {
    const counts = await queueCounts(this.sql, subscription.queue);
    const batches = await batchCounts(this.sql, subscription.queue);
    const deadLetters = await countOpenDeadLetters(this.sql, subscription.name);
    const lag = await cursors.selectCursorLag(this.sql, subscription.queue, LAG_COUNT_CAP);
    return {
      backlog: counts.backlog + lag.events,
      cursorLag: lag.events,
      cursorLagAgeSeconds: lag.oldestAgeSeconds,
      cursorPosition: lag.position,
      inFlight: counts.inFlight + batches.inFlight,
      oldestUnackedAgeSeconds: Math.max(
        counts.oldestAgeSeconds,
        batches.oldestAgeSeconds,
        lag.oldestAgeSeconds,
      ),
      deadLetters,
      parkedKeys: counts.parked,
    };
  }

  listTopicEvents(topic: string, from: TopicEventsFrom, limit: number): Promise<StoredEvent[]> {
    return events.selectTopicEvents(this.sql, topic, from, limit);
  }

  firstEventAtOrAfter(topic: string, time: Date): Promise<string | undefined> {
    return cursors.selectFirstAtOrAfter(this.sql, topic, time);
  }

  async listParkedKeys(subscription: Subscription): Promise<ParkedKey[]> {
    const parked = await selectParked(this.sql, subscription.queue);
    const deadLetterOf = await deadLetterIdsOfParkedJobs(
      this.sql,
      parked.map((p) => p.jobId),
    );
    return parked.map((p) => ({
      orderingKey: p.key,
      deadLetterId: deadLetterOf.get(p.jobId) ?? "",
      waiting: p.waiting,
    }));
  }

  async releaseParkedKeys(subscription: Subscription, keys: string[]): Promise<number> {
    return transaction(this.sql, async (tx) => {
      const released = await this.queue.releaseParked(tx, subscription.queue, { keys });
      // Their dead letters stay listed; a later redrive queues them anew at the back of the key.
      await detachParkedJobs(tx, released);
      return released.length;
    });
  }

  async listSubscriptions(topic: string, pageSize: number, after: string): Promise<Page<Subscription>> {
    const rows = await subscriptions.selectSubscriptionsAfter(this.sql, topic, after, pageSize + 1);
    return pageOf(rows, pageSize, (s) => s.name);
  }

  async deleteSubscription(name: string): Promise<boolean> {
    const row = await transaction(this.sql, async (tx) => {
      const deleted = await subscriptions.deleteSubscriptionRow(tx, name);
      if (deleted) {
        const change = subscriptionChangePayload({
          name: deleted.name,
          queue: deleted.queue,
          kind: "deleted",
        });
        await tx`SELECT pg_notify(${SUBSCRIPTION_CHANNEL}, ${change})`;
      }
      return deleted;
    });
    if (!row) return false;
    await this.queue.deleteQueue(row.queue);
    return true;
  }
}

/** Cursor lags are counted up to this many events (an index range count; past it, "at least"). */
const LAG_COUNT_CAP = 100_000;

/**
 * The cursor position for a start: the seq just before the first event to deliver. Refuses a
 * position or time before the oldest event retention kept (its events are gone).
 */
async function cursorBefore(tx: TransactionSql, topic: string, start: StartPosition): Promise<string> {
  const head = await cursors.selectTopicHead(tx, topic);
  if (start.kind === "now") return head;
  const retainedFrom = await topics.selectRetainedFrom(tx, topic);
  const tail = await cursors.selectTopicTail(tx, topic);
  const refuse = () => {
    const oldest = tail
      ? `position ${tail.seq}, published at ${tail.publishedAt.toISOString()}`
      : `position ${retainedFrom} (the topic holds no event now)`;
    return new MeshError(
      "failed_precondition",
      `topic ${topic} no longer retains events before its oldest retained event (${oldest}); seek to it or later`,
    );
  };
  if (start.kind === "earliest") return tail ? (BigInt(tail.seq) - 1n).toString() : head;
  if (start.kind === "position") {
    const position = BigInt(start.position);
    if (retainedFrom !== "0" && position < BigInt(retainedFrom)) throw refuse();
    if (position < 1n) throw new MeshError("invalid_argument", "a position is 1 or more");
    return (position - 1n).toString();
  }
  if (retainedFrom !== "0" && tail && start.time < tail.publishedAt) throw refuse();
  const first = await cursors.selectFirstAtOrAfter(tx, topic, start.time);
  return first === undefined ? head : (BigInt(first) - 1n).toString();
}

function pageOf<T>(rows: T[], pageSize: number, key: (row: T) => string): Page<T> {
  const items = rows.slice(0, pageSize);
  const last = items.at(-1);
  return { items, nextPageToken: rows.length > pageSize && last ? key(last) : "" };
}
