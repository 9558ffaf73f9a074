// The publish use case: validate a batch, store it (store/ makes it one transaction) with the
// hand-offs this broker's idle dispatchers of the topic claim (publish-handoffs.ts), give them what
// it leased for them, then wake the others (they lease the new events from their cursors).
import { randomUUID } from "node:crypto";
import { invalidArgument } from "./errors.ts";
import { eventBytes } from "./event-size.ts";
import type { EventEnvelope, Published, PublishOutcome, TopicSchema } from "./model.ts";
import { assertName } from "./names.ts";
import type { DeliveryObserver } from "./observer.ts";
import type { EventStore } from "./ports.ts";
import { Handoff, type PublishHandoffs } from "./publish-handoffs.ts";
import { type CompiledSchema, compileSchema } from "./schema.ts";

export const PUBLISH_LIMITS = {
  maxBatch: 1000,
  /** Per event: payload plus every string field, so that one event fits any consumer's message limit. */
  maxEventBytes: 1024 * 1024,
  maxIdLength: 256,
  maxSourceLength: 256,
  maxTypeLength: 256,
  maxSubjectLength: 1024,
  maxOrderingKeyLength: 256,
  maxAttributes: 64,
  maxAttributeValueLength: 4096,
} as const;

// CloudEvents extension attribute names: lower-case letters and digits (we also allow '_' and '-').
const ATTRIBUTE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export class Publisher {
  // Compiled schemas by topic (undefined: the topic has none), kept until a change is announced
  // (forgetSchema, from the NOTIFY every schema change sends), so a publish costs no query for it.
  private readonly schemas = new Map<string, CompiledSchema | undefined>();
  private readonly schemaLoads = new Map<string, Promise<CompiledSchema | undefined>>();
  // Bumped by every forget: a load that was running meanwhile may have read the old schema, so
  // its result is used once but not kept.
  private schemaGeneration = 0;

  constructor(
    private readonly events: EventStore,
    /** Called with the topic and its newest event after a publish stored events. */
    private readonly onPublished: (topic: string, newest: string | undefined) => void,
    private readonly observer: DeliveryObserver,
    private readonly loadSchema: (topic: string) => Promise<TopicSchema | undefined>,
    private readonly handoffs: PublishHandoffs = { ask: () => Handoff.none },
  ) {}

  async publish(topic: string, batch: EventEnvelope[]): Promise<PublishOutcome[]> {
    assertName("topic", topic);
    if (batch.length === 0) throw invalidArgument("a publish request needs at least one event");
    if (batch.length > PUBLISH_LIMITS.maxBatch) {
      throw invalidArgument(
        `a publish request holds at most ${PUBLISH_LIMITS.maxBatch} events, got ${batch.length}`,
      );
    }
    const started = performance.now();
    const normalised = batch.map((event, index) => normaliseEvent(event, index));
    await this.checkSchema(topic, normalised);
    const handoff = this.handoffs.ask(topic);
    let published: Published;
    try {
      published = await this.events.publish(topic, normalised, handoff.asks);
    } catch (error) {
      handoff.settle(undefined);
      throw error;
    }
    // The streams get their deliveries once this publish's answer is on its way: encoding a
    // 500-event Deliveries message before answering held a producer that waits for each confirm
    // (bench (a), 4 streams: 0.78x the same tree without hand-offs).
    if (handoff.claimed) setImmediate(() => handoff.settle(published.handedOff));
    const { outcomes, stored } = published;
    if (stored > 0) this.onPublished(topic, published.newest);
    this.observer.published(topic, stored, (performance.now() - started) / 1000);
    return outcomes;
  }

  /** Refuses events whose payload the topic's schema does not take, naming the first. */
  async checkSchema(topic: string, events: EventEnvelope[]): Promise<void> {
    const schema = await this.schemaOf(topic);
    if (!schema) return;
    events.forEach((event, index) => {
      const problem = schema.check(event.dataTypeUrl, event.data);
      if (problem) throw invalidArgument(`events[${index}].data ${problem}`);
    });
  }

  /** The topic's compiled schema, from the cache when no change was announced since it was loaded. */
  schemaOf(topic: string): Promise<CompiledSchema | undefined> | CompiledSchema | undefined {
    if (this.schemas.has(topic)) return this.schemas.get(topic);
    let load = this.schemaLoads.get(topic);
    if (!load) {
      const generation = this.schemaGeneration;
      load = this.loadSchema(topic)
        .then((stored) => (stored ? compileSchema(stored.fileDescriptorSet, stored.messageTypes) : undefined))
        .then((schema) => {
          if (generation === this.schemaGeneration) this.schemas.set(topic, schema);
          return schema;
        })
        .finally(() => {
          // A forget may have let a newer load take this one's place: leave that one in.
          if (this.schemaLoads.get(topic) === load) this.schemaLoads.delete(topic);
        });
      this.schemaLoads.set(topic, load);
    }
    return load;
  }

  /**
   * Drops the cached schema of a topic whose schema changed (this broker's admin call, or the
   * NOTIFY of any broker's); without a topic, every cached schema (the LISTEN connection came
   * back, and a change may have been missed while it was down).
   */
  forgetSchema(topic?: string): void {
    this.schemaGeneration++;
    // A load in flight may have read the old schema: the next publish starts a new one.
    if (topic === undefined) {
      this.schemas.clear();
      this.schemaLoads.clear();
    } else {
      this.schemas.delete(topic);
      this.schemaLoads.delete(topic);
    }
  }
}

/** Validates one event and fills the defaults (id, type). Throws invalid_argument naming the field. */
export function normaliseEvent(event: EventEnvelope, index: number): EventEnvelope {
  const at = `events[${index}]`;
  const id = event.id || randomUUID();
  checkLength(`${at}.id`, id, PUBLISH_LIMITS.maxIdLength);
  if (!event.source)
    throw invalidArgument(`${at}.source is required (who produced the event, e.g. "orders-service")`);
  checkLength(`${at}.source`, event.source, PUBLISH_LIMITS.maxSourceLength);
  if (event.dataTypeUrl && !event.dataTypeUrl.includes("/")) {
    throw invalidArgument(
      `${at}.data.type_url ${JSON.stringify(event.dataTypeUrl.slice(0, 100))} is not a type URL (expected e.g. "type.googleapis.com/shop.v1.OrderPlaced")`,
    );
  }
  const type = event.type || event.dataTypeUrl.slice(event.dataTypeUrl.lastIndexOf("/") + 1);
  if (!type) throw invalidArgument(`${at}.type is required when the event has no data`);
  checkLength(`${at}.type`, type, PUBLISH_LIMITS.maxTypeLength);
  checkLength(`${at}.subject`, event.subject, PUBLISH_LIMITS.maxSubjectLength);
  checkLength(`${at}.ordering_key`, event.orderingKey, PUBLISH_LIMITS.maxOrderingKeyLength);
  const names = Object.keys(event.attributes);
  if (names.length > PUBLISH_LIMITS.maxAttributes) {
    throw invalidArgument(
      `${at}.attributes has ${names.length} entries; at most ${PUBLISH_LIMITS.maxAttributes} are allowed`,
    );
  }
  for (const name of names) {
    if (!ATTRIBUTE_NAME.test(name)) {
      throw invalidArgument(
        `${at}.attributes key ${JSON.stringify(name.slice(0, 80))} is not valid: use 1-64 characters of a-z, 0-9, '_' and '-'`,
      );
    }
    checkLength(
      `${at}.attributes["${name}"]`,
      event.attributes[name] ?? "",
      PUBLISH_LIMITS.maxAttributeValueLength,
    );
  }
  const size = eventBytes(event);
  if (size > PUBLISH_LIMITS.maxEventBytes) {
    throw invalidArgument(
      `${at} is ${formatBytes(size)}; an event may be at most ${formatBytes(PUBLISH_LIMITS.maxEventBytes)} (payload and attributes together)`,
    );
  }
  return { ...event, id, type };
}

function checkLength(field: string, value: string, max: number): void {
  if (value.length > max)
    throw invalidArgument(`${field} is ${value.length} characters long; the limit is ${max}`);
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / (1024 * 1024)).toFixed(2)} MiB`
    : `${(bytes / 1024).toFixed(1)} KiB`;
}
