// Publish coalescing, as Kafka's producer does it with linger.ms=0: a publish goes out at once while
// fewer than `maxInFlight` Publish requests of its topic are in flight from this client; otherwise
// it waits, and when one of them returns, what waits for the topic goes out together, as one
// request (or as few as the broker's limits allow). Idle, nothing waits; busy, a service that
// publishes one event per call pays one gRPC call per returning request, not one per event.
//
// A request is one broker transaction, so each call's events stay all or nothing. A request that
// fails for a reason the request itself carries (an invalid event, a missing topic, a denied
// source: any code retries cannot fix) is sent again call by call, so that only the call at fault
// fails, with its own error; one that fails after its retries (UNAVAILABLE, DEADLINE_EXCEEDED,
// ABORTED) fails every call in it, as each would have alone. A call's events are contiguous and in
// order within a request, and waiting calls leave in the order they were made; calls made
// concurrently were never ordered against each other, though (await one before making the next, or
// use the BatchPublisher's ordering keys, for order).
import type { Event } from "@pgmesh/proto/pgmesh/v1/event";
import type { PublishResult } from "@pgmesh/proto/pgmesh/v1/publisher";
import { isRetryable } from "./retry.ts";

export interface PublishCoalescing {
  /**
   * Publish requests of one topic in flight from this client before further publishes wait and
   * are sent together (default 4); 0 sends every publish at once, alone.
   */
  maxInFlight?: number;
  /** Events per coalesced request at most (default and maximum: 1000, the broker's limit). */
  maxEvents?: number;
  /**
   * Encoded bytes per coalesced request at most (default 4 MiB less 64 KiB: the broker reads
   * requests up to 4 MiB). A call larger than this on its own is sent alone.
   */
  maxBytes?: number;
}

/** The broker's own limits on one Publish request (broker/src/delivery/publishing.ts, grpc-server.ts). */
export const BROKER_MAX_EVENTS = 1000;
export const BROKER_MAX_REQUEST_BYTES = 4 * 1024 * 1024;
export const DEFAULT_COALESCING = {
  maxInFlight: 4,
  maxEvents: BROKER_MAX_EVENTS,
  maxBytes: BROKER_MAX_REQUEST_BYTES - 64 * 1024,
} as const;

/** Sends one Publish request with the client's retries; resolves with one result per event. */
export type SendPublish = (topic: string, events: Event[]) => Promise<PublishResult[]>;

/** One publish() call waiting for, or riding in, a request. */
interface Call {
  events: Event[];
  bytes: number;
  resolve: (results: PublishResult[]) => void;
  reject: (error: unknown) => void;
}

interface TopicState {
  waiting: Call[];
  inFlight: number;
}

export class PublishCoalescer {
  private readonly topics = new Map<string, TopicState>();
  private readonly maxInFlight: number;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly send: SendPublish,
    settings: PublishCoalescing = {},
  ) {
    this.maxInFlight = Math.max(1, settings.maxInFlight ?? DEFAULT_COALESCING.maxInFlight);
    this.maxEvents = Math.min(
      BROKER_MAX_EVENTS,
      Math.max(1, settings.maxEvents ?? DEFAULT_COALESCING.maxEvents),
    );
    this.maxBytes = settings.maxBytes ?? DEFAULT_COALESCING.maxBytes;
  }

  /**
   * Publishes one call's events (ids already set); resolves with its own results, in its order.
   * The call is sent in the microtask after this one, so calls made in one go (a Promise.all)
   * start out together, and a call made when the topic has a free slot waits for nothing.
   */
  publish(topic: string, events: Event[]): Promise<PublishResult[]> {
    if (this.closed) return this.sendRequest(topic, events);
    let bytes = 0;
    for (const event of events) bytes += requestEntryBound(event);
    return new Promise((resolve, reject) => {
      let state = this.topics.get(topic);
      if (!state) {
        state = { waiting: [], inFlight: 0 };
        this.topics.set(topic, state);
      }
      state.waiting.push({ events, bytes, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          for (const [name, s] of this.topics) this.flush(name, s);
        });
      }
    });
  }

  /** Publishes waiting now (for every topic) and later are sent at once, whatever is in flight. */
  close(): void {
    this.closed = true;
    for (const [name, state] of this.topics) this.flush(name, state);
  }

  /** Calls waiting and requests in flight, per topic (for tests). */
  get pending(): Map<string, { waiting: number; inFlight: number }> {
    return new Map(
      [...this.topics].map(([name, s]) => [name, { waiting: s.waiting.length, inFlight: s.inFlight }]),
    );
  }

  private flush(topic: string, state: TopicState): void {
    while (state.waiting.length > 0 && (this.closed || state.inFlight < this.maxInFlight)) {
      const calls = this.take(topic, state.waiting);
      state.inFlight++;
      void this.run(topic, calls).finally(() => {
        state.inFlight--;
        this.flush(topic, state);
      });
    }
    if (state.inFlight === 0 && state.waiting.length === 0) this.topics.delete(topic);
  }

  /** The oldest waiting calls that fit one request together; always at least one, however large. */
  private take(topic: string, waiting: Call[]): Call[] {
    let events = 0;
    let bytes = requestOverhead(topic);
    let count = 0;
    for (const call of waiting) {
      if (count > 0 && (events + call.events.length > this.maxEvents || bytes + call.bytes > this.maxBytes))
        break;
      events += call.events.length;
      bytes += call.bytes;
      count++;
    }
    return waiting.splice(0, count);
  }

  private async run(topic: string, calls: Call[]): Promise<void> {
    const events = calls.length === 1 ? (calls[0] as Call).events : calls.flatMap((c) => c.events);
    let results: PublishResult[];
    try {
      results = await this.sendRequest(topic, events);
    } catch (error) {
      if (calls.length === 1 || isRetryable(error)) {
        for (const call of calls) call.reject(error);
        return;
      }
      // Nothing of the request was stored (it is one transaction; and were any of it, the ids are
      // fixed, so a re-send is answered `duplicate`): each call again on its own, so that only the
      // one at fault fails, with an error about its own events.
      await Promise.all(
        calls.map((call) => this.sendRequest(topic, call.events).then(call.resolve, call.reject)),
      );
      return;
    }
    if (results.length !== events.length) {
      const error = new Error(`the broker answered ${results.length} results for ${events.length} events`);
      for (const call of calls) call.reject(error);
      return;
    }
    let offset = 0;
    for (const call of calls) {
      call.resolve(calls.length === 1 ? results : results.slice(offset, offset + call.events.length));
      offset += call.events.length;
    }
  }

  /** `send`, with a synchronous throw turned into a rejection. */
  private async sendRequest(topic: string, events: Event[]): Promise<PublishResult[]> {
    return this.send(topic, events);
  }
}

// Upper bounds on encoded sizes, from the fields' UTF-8 lengths (cheaper than encoding every event
// twice): a length-delimited field costs its tag (1 byte here) and a length of at most 5 bytes.
const FIELD = 6;
const TIMESTAMP = FIELD + 1 + 10 + 1 + 5;
const utf8 = (text: string) => (text.length === 0 ? 0 : FIELD + Buffer.byteLength(text));

/** The PublishRequest's own bytes besides its events. */
function requestOverhead(topic: string): number {
  return utf8(topic);
}

/** At least the bytes an event adds to a PublishRequest (its own encoding and its field header). */
export function requestEntryBound(event: Event): number {
  let size =
    FIELD +
    utf8(event.id) +
    utf8(event.source) +
    utf8(event.type) +
    utf8(event.subject) +
    utf8(event.orderingKey) +
    utf8(event.topic);
  if (event.time) size += TIMESTAMP;
  if (event.publishTime) size += TIMESTAMP;
  if (event.deliverAfter) size += TIMESTAMP;
  for (const [key, value] of Object.entries(event.attributes)) size += FIELD + utf8(key) + utf8(value);
  if (event.data) size += FIELD + utf8(event.data.typeUrl) + FIELD + event.data.value.byteLength;
  return size;
}
