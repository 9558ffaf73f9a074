// The topic, subscription and dead-letter use cases: argument checks and defaults, then the stores.
import { isBigintText } from "./bigint-text.ts";
import { invalidArgument, MeshError, notFound } from "./errors.ts";
import { parseFilter } from "./filter.ts";
import type {
  DeadLetter,
  DeadLetterSelection,
  DeliveryPolicy,
  Page,
  ParkedKey,
  RetryPolicy,
  SeekResult,
  StartPosition,
  StoredEvent,
  Subscription,
  SubscriptionStats,
  Topic,
  TopicSchema,
} from "./model.ts";
import { assertName } from "./names.ts";
import type { CatalogStore, DeadLetterStore, TopicEventsFrom } from "./ports.ts";
import {
  checkMaxDeliveryAttempts,
  checkRetryPolicy,
  DEFAULT_MAX_DELIVERY_ATTEMPTS,
  DEFAULT_RETRY_POLICY,
} from "./retry-policy.ts";
import { compileSchema } from "./schema.ts";
import { visiblePage } from "./visible-page.ts";

export const DEFAULT_ACK_DEADLINE_SECONDS = 60;
export const MAX_ACK_DEADLINE_SECONDS = 3600;
/** A schema is sent back whole (GetTopicSchema): it must fit a default client's 4 MiB with room. */
export const MAX_SCHEMA_BYTES = 2 * 1024 * 1024;
const DEFAULT_PAGE_SIZE = 100;
// Events carry payloads of up to 1 MiB: a page of them stays far below a response's limit.
const DEFAULT_EVENTS_PAGE_SIZE = 20;
const MAX_EVENTS_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/** A policy as a request gives it: anything left out keeps its current (or default) value. */
export interface PolicyInput {
  ackDeadlineSeconds?: number;
  ackedRetentionSeconds?: number;
  maxDeliveryAttempts?: number;
  deadLettering?: boolean;
  retryPolicy?: Partial<RetryPolicy>;
}

export const MAX_ACKED_RETENTION_SECONDS = 30 * 24 * 60 * 60;
export const DEFAULT_TOPIC_RETENTION_SECONDS = 7 * 24 * 60 * 60;
const MIN_TOPIC_RETENTION_SECONDS = 60;
const MAX_TOPIC_RETENTION_SECONDS = 366 * 24 * 60 * 60;

function checkRetention(seconds: number): number {
  if (
    !Number.isInteger(seconds) ||
    seconds < MIN_TOPIC_RETENTION_SECONDS ||
    seconds > MAX_TOPIC_RETENTION_SECONDS
  ) {
    throw invalidArgument(
      `retention must be ${MIN_TOPIC_RETENTION_SECONDS}s..${MAX_TOPIC_RETENTION_SECONDS}s (366 days) in whole seconds, got ${seconds}s`,
    );
  }
  return seconds;
}

export const DEFAULT_POLICY: DeliveryPolicy = {
  ackDeadlineSeconds: DEFAULT_ACK_DEADLINE_SECONDS,
  ackedRetentionSeconds: 0,
  maxDeliveryAttempts: DEFAULT_MAX_DELIVERY_ATTEMPTS,
  deadLettering: true,
  retryPolicy: DEFAULT_RETRY_POLICY,
};

/** Refuses a start position no seek could honour (a position must be a positive integer). */
function checkStart(field: string, start: StartPosition): StartPosition {
  if (start.kind === "position" && !/^[1-9][0-9]{0,18}$/.test(start.position))
    throw invalidArgument(`${field}.position must be a position of 1 or more, got ${start.position}`);
  if (start.kind === "time" && Number.isNaN(start.time.getTime()))
    throw invalidArgument(`${field}.time is not a valid time`);
  return start;
}

export class Admin {
  constructor(
    private readonly catalog: CatalogStore,
    private readonly deadLetters: DeadLetterStore,
    private readonly onPolicyChanged: (subscription: Subscription) => void,
    private readonly onDeliveriesChanged: (subscription: Subscription) => void,
    private readonly onSchemaChanged: (topic: string) => void = () => {},
  ) {}

  createTopic(name: string, retentionSeconds?: number): Promise<Topic> {
    return this.catalog.createTopic(
      assertName("topic", name),
      checkRetention(retentionSeconds ?? DEFAULT_TOPIC_RETENTION_SECONDS),
    );
  }

  async updateTopic(name: string, retentionSeconds: number | undefined): Promise<Topic> {
    if (retentionSeconds === undefined) throw invalidArgument("retention is required");
    const topic = await this.catalog.updateTopic(assertName("topic", name), checkRetention(retentionSeconds));
    if (!topic) throw notFound(`topic ${name} does not exist`);
    return topic;
  }

  async getTopic(name: string): Promise<Topic> {
    const topic = await this.catalog.getTopic(assertName("topic", name));
    if (!topic) throw notFound(`topic ${name} does not exist`);
    return topic;
  }

  /** A page of the topics `visible` lets the caller see (see visible-page.ts). */
  listTopics(
    pageSize: number,
    pageToken: string,
    visible: (name: string) => boolean = () => true,
  ): Promise<Page<Topic>> {
    return visiblePage(
      checkPageSize(pageSize),
      checkPageToken(pageToken),
      visible,
      (limit, after) => this.catalog.listTopics(limit, after),
      (t) => t.name,
    );
  }

  /**
   * A page of the topic's stored events: ascending from a position or a time (`earliest`: the
   * oldest retained), or the newest first (no start, or `now`). The page token says where the
   * next page starts and in which direction.
   */
  async listTopicEvents(
    topic: string,
    start: StartPosition | undefined,
    pageSize: number,
    pageToken: string,
  ): Promise<Page<StoredEvent>> {
    await this.getTopic(topic);
    if (pageSize > MAX_EVENTS_PAGE_SIZE)
      throw invalidArgument(`page_size is at most ${MAX_EVENTS_PAGE_SIZE}, got ${pageSize}`);
    const size = pageSize || DEFAULT_EVENTS_PAGE_SIZE;
    const from = await this.eventsFrom(topic, start && checkStart("start", start), pageToken);
    if (!from) return { items: [], nextPageToken: "" };
    const rows = await this.catalog.listTopicEvents(topic, from, size + 1);
    const items = rows.slice(0, size);
    const last = items.at(-1);
    let nextPageToken = "";
    if (rows.length > size && last) {
      nextPageToken = from.direction === "up" ? `u${BigInt(last.seq) + 1n}` : `d${last.seq}`;
    }
    return { items, nextPageToken };
  }

  private async eventsFrom(
    topic: string,
    start: StartPosition | undefined,
    pageToken: string,
  ): Promise<TopicEventsFrom | undefined> {
    if (pageToken) {
      const token = /^([ud])([0-9]{1,19})$/.exec(pageToken);
      if (!token) throw invalidArgument("page_token is not one this server returned");
      return token[1] === "u"
        ? { direction: "up", seq: token[2] as string }
        : { direction: "down", before: token[2] as string };
    }
    switch (start?.kind) {
      case undefined:
      case "now":
        return { direction: "down", before: undefined };
      case "earliest":
        return { direction: "up", seq: "0" };
      case "position":
        return { direction: "up", seq: start.position };
      case "time": {
        const seq = await this.catalog.firstEventAtOrAfter(topic, start.time);
        return seq === undefined ? undefined : { direction: "up", seq };
      }
    }
  }

  async setTopicSchema(
    topic: string,
    schema: { fileDescriptorSet: Uint8Array; messageTypes: string[] },
  ): Promise<TopicSchema | undefined> {
    assertName("topic", topic);
    if (schema.fileDescriptorSet.byteLength > MAX_SCHEMA_BYTES) {
      throw invalidArgument(
        `schema.file_descriptor_set is ${schema.fileDescriptorSet.byteLength} bytes; at most ${MAX_SCHEMA_BYTES} (2 MiB), so that the schema fits in a response a default client accepts`,
      );
    }
    const binding = schema.messageTypes.length === 0 ? undefined : schema;
    // Refuses descriptors that do not compile or do not hold the named types.
    if (binding) compileSchema(binding.fileDescriptorSet, binding.messageTypes);
    if (!(await this.catalog.setTopicSchema(topic, binding))) throw notFound(`topic ${topic} does not exist`);
    this.onSchemaChanged(topic);
    return binding ? this.catalog.getTopicSchema(topic) : undefined;
  }

  async getTopicSchema(topic: string): Promise<TopicSchema | undefined> {
    await this.getTopic(topic);
    return this.catalog.getTopicSchema(topic);
  }

  async deleteTopic(name: string): Promise<void> {
    if (!(await this.catalog.deleteTopic(assertName("topic", name))))
      throw notFound(`topic ${name} does not exist`);
  }

  createSubscription(
    input: {
      name: string;
      topic: string;
      ordering?: boolean;
      filter?: string;
      start?: StartPosition;
    } & PolicyInput,
  ): Promise<Subscription> {
    const policy = mergePolicy(DEFAULT_POLICY, input);
    const filter = (input.filter ?? "").trim();
    parseFilter(filter);
    return this.catalog.createSubscription({
      name: assertName("subscription", input.name),
      topic: assertName("topic", input.topic),
      ordering: input.ordering ?? false,
      filter,
      start: checkStart("start", input.start ?? { kind: "now" }),
      ...policy,
    });
  }

  /**
   * Moves the subscription to a time or a position (Pub/Sub's seek, JetStream's deliver policies,
   * Kafka's offsets for times): events before it count as acked, those after as pending, and
   * deliveries leased before it answer STALE when settled. Streams on every broker get the events
   * from the new position (the dispatchers are woken here; other brokers at their next poll).
   */
  async seekSubscription(name: string, to: StartPosition | undefined): Promise<SeekResult> {
    if (!to) throw invalidArgument("to is required: a time, a position, earliest or now");
    const sub = await this.getSubscription(name);
    const result = await this.catalog.seekSubscription(sub, checkStart("to", to));
    this.onDeliveriesChanged(sub);
    return result;
  }

  async getSubscription(name: string): Promise<Subscription> {
    const sub = await this.catalog.getSubscription(assertName("subscription", name));
    if (!sub) throw notFound(`subscription ${name} does not exist`);
    return sub;
  }

  async updateSubscription(name: string, changes: PolicyInput): Promise<Subscription> {
    const current = await this.getSubscription(name);
    const updated = await this.catalog.updateSubscription(current.name, mergePolicy(current, changes));
    if (!updated) throw notFound(`subscription ${name} does not exist`);
    this.onPolicyChanged(updated);
    return updated;
  }

  async stats(name: string): Promise<SubscriptionStats> {
    return this.catalog.stats(await this.getSubscription(name));
  }

  /** A page of the topic's (or all) subscriptions `visible` lets the caller see. */
  listSubscriptions(
    topic: string,
    pageSize: number,
    pageToken: string,
    visible: (name: string) => boolean = () => true,
  ): Promise<Page<Subscription>> {
    if (topic) assertName("topic", topic);
    return visiblePage(
      checkPageSize(pageSize),
      checkPageToken(pageToken),
      visible,
      (limit, after) => this.catalog.listSubscriptions(topic, limit, after),
      (s) => s.name,
    );
  }

  async deleteSubscription(name: string): Promise<void> {
    if (!(await this.catalog.deleteSubscription(assertName("subscription", name)))) {
      throw notFound(`subscription ${name} does not exist`);
    }
  }

  /**
   * A page of dead letters. With `maxBytes`, the page ends early where the next dead letter would
   * take it past that many bytes (by `bytesOf`; the first is always included), and the token
   * continues from there: a page of large events still fits a client's message limit.
   */
  async listDeadLetters(
    selection: DeadLetterSelection,
    pageSize: number,
    pageToken: string,
    limit?: { maxBytes: number; bytesOf: (deadLetter: DeadLetter) => number },
  ): Promise<Page<DeadLetter>> {
    await this.getSubscription(checkSelection(selection).subscription);
    if (pageToken && !isBigintText(pageToken))
      throw invalidArgument("page_token is not one this server returned");
    const page = await this.deadLetters.list(selection, checkPageSize(pageSize), pageToken);
    if (!limit) return page;
    let bytes = 0;
    const kept = page.items.filter((dl, index) => {
      bytes += limit.bytesOf(dl);
      return index === 0 || bytes <= limit.maxBytes;
    });
    // Dead letters are paged by id (the token is the last id of the page).
    if (kept.length === page.items.length) return page;
    return { items: kept, nextPageToken: kept.at(-1)?.id ?? "" };
  }

  async redriveDeadLetters(selection: DeadLetterSelection): Promise<number> {
    const sub = await this.getSubscription(checkSelection(selection).subscription);
    const count = await this.deadLetters.redrive(sub, selection);
    if (count > 0) this.onDeliveriesChanged(sub);
    return count;
  }

  async purgeDeadLetters(selection: DeadLetterSelection): Promise<number> {
    const sub = await this.getSubscription(checkSelection(selection).subscription);
    const purged = await this.deadLetters.purge(sub, selection);
    // Purging a parked key's dead letter releases the key.
    if (purged > 0 && sub.ordering) this.onDeliveriesChanged(sub);
    return purged;
  }

  async listParkedKeys(subscription: string): Promise<ParkedKey[]> {
    return this.catalog.listParkedKeys(await this.getSubscription(subscription));
  }

  async releaseParkedKeys(subscription: string, keys: string[]): Promise<number> {
    const sub = await this.getSubscription(subscription);
    if (!sub.ordering)
      throw new MeshError(
        "failed_precondition",
        `subscription ${sub.name} is not ordered: it has no keys to park`,
      );
    if (keys.length === 0) throw invalidArgument("name at least one ordering key to release");
    const released = await this.catalog.releaseParkedKeys(sub, keys);
    if (released > 0) this.onDeliveriesChanged(sub);
    return released;
  }
}

/** Applies the changes a request asks for to a policy, checking each value. */
export function mergePolicy(base: DeliveryPolicy, changes: PolicyInput): DeliveryPolicy {
  const ackDeadlineSeconds = changes.ackDeadlineSeconds ?? base.ackDeadlineSeconds;
  if (
    !Number.isInteger(ackDeadlineSeconds) ||
    ackDeadlineSeconds < 1 ||
    ackDeadlineSeconds > MAX_ACK_DEADLINE_SECONDS
  ) {
    throw invalidArgument(
      `ack_deadline must be a whole number of seconds from 1 to ${MAX_ACK_DEADLINE_SECONDS}, got ${ackDeadlineSeconds}s`,
    );
  }
  const ackedRetentionSeconds = changes.ackedRetentionSeconds ?? base.ackedRetentionSeconds;
  if (
    !Number.isInteger(ackedRetentionSeconds) ||
    ackedRetentionSeconds < 0 ||
    ackedRetentionSeconds > MAX_ACKED_RETENTION_SECONDS
  ) {
    throw invalidArgument(
      `acked_retention must be 0s..${MAX_ACKED_RETENTION_SECONDS}s (30 days) in whole seconds, got ${ackedRetentionSeconds}s`,
    );
  }
  return {
    ackDeadlineSeconds,
    ackedRetentionSeconds,
    maxDeliveryAttempts: checkMaxDeliveryAttempts(changes.maxDeliveryAttempts ?? base.maxDeliveryAttempts),
    deadLettering: changes.deadLettering ?? base.deadLettering,
    retryPolicy: checkRetryPolicy({ ...base.retryPolicy, ...definedOnly(changes.retryPolicy ?? {}) }),
  };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkSelection(selection: DeadLetterSelection): DeadLetterSelection {
  assertName("subscription", selection.subscription);
  if (selection.ids) {
    for (const id of selection.ids) {
      if (!isBigintText(id))
        throw invalidArgument(`dead letter id ${JSON.stringify(id.slice(0, 40))} is not valid`);
    }
  }
  if (selection.after && selection.before && selection.after >= selection.before) {
    throw invalidArgument("filter.after must be earlier than filter.before");
  }
  return selection;
}

function checkPageSize(pageSize: number): number {
  if (pageSize === 0) return DEFAULT_PAGE_SIZE;
  if (pageSize > MAX_PAGE_SIZE)
    throw invalidArgument(`page_size is at most ${MAX_PAGE_SIZE}, got ${pageSize}`);
  return pageSize;
}

// Page tokens are the last name of the previous page: names are ordered and unique.
function checkPageToken(token: string): string {
  if (token.length > 200)
    throw new MeshError("invalid_argument", "page_token is not one this server returned");
  return token;
}
