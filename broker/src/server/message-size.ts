// Upper bounds on the encoded size of what the broker sends, so that every message can be kept
// within what a client accepts without encoding anything twice. Protobuf spends on a field at most
// a tag (2 bytes for our field numbers) and a length or varint (up to 10 bytes) besides its content;
// a Timestamp is at most two such fields. A bound a little high only makes messages a little smaller.
import type { DeadLetter, StoredEvent } from "../delivery/model.ts";

const FIELD = 12;
const TIMESTAMP = FIELD + 2 * FIELD;

const utf8 = (text: string) => Buffer.byteLength(text);

export function eventWireBound(event: StoredEvent): number {
  let size = FIELD; // the event field itself
  for (const text of [event.id, event.source, event.type, event.subject, event.orderingKey, event.topic]) {
    size += FIELD + utf8(text);
  }
  size += 3 * FIELD + utf8(event.dataTypeUrl) + event.data.byteLength; // Any { type_url, value }
  for (const [name, value] of Object.entries(event.attributes)) {
    size += 3 * FIELD + utf8(name) + utf8(value); // a map entry: { key, value }
  }
  return size + 3 * TIMESTAMP; // time, publish_time, deliver_after
}

export const deliveryWireBound = (ackId: string, event: StoredEvent) =>
  FIELD + FIELD + utf8(ackId) + FIELD + eventWireBound(event);

export const ackResultWireBound = (ackId: string, message: string) =>
  FIELD + FIELD + utf8(ackId) + FIELD + FIELD + utf8(message);

export const deadLetterWireBound = (dl: DeadLetter) =>
  FIELD +
  4 * FIELD +
  utf8(dl.id) +
  utf8(dl.subscription) +
  utf8(dl.lastError) +
  eventWireBound(dl.event) +
  2 * TIMESTAMP;

/** What a message's own framing (the oneof or response field around the list) may add. */
export const ENVELOPE_BOUND = 2 * FIELD;

/**
 * Splits items into runs whose bounds add up to at most `limit` bytes. An item larger than the
 * limit on its own goes alone (the caller keeps items below the limit).
 */
export function splitByBytes<T>(items: T[], bound: (item: T) => number, limit: number): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let runBytes = 0;
  for (const item of items) {
    const bytes = bound(item);
    if (run.length > 0 && runBytes + bytes > limit) {
      runs.push(run);
      run = [];
      runBytes = 0;
    }
    run.push(item);
    runBytes += bytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
