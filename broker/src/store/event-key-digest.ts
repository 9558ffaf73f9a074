// An event's idempotency key as stored in pgmesh.event_keys: the same digest as the SQL function
// pgmesh.event_key_digest (migration 0031), computed in the broker. In the publish statement the
// SQL function took about 1.9 ms of a 500-event batch's 15-20 ms, on Postgres, the busiest
// process of a publish-heavy run; Node's SHA-256 costs the broker about a microsecond an event.
// The SQL function stays the definition (the migration and any SQL that looks a key up use it);
// event-key-digests.test.ts checks that both give the same digest, non-ASCII text included.
import { hash } from "node:crypto";

/**
 * SHA-256 of `len(topic) ':' topic len(source) ':' source id` in UTF-8, its first 16 bytes as a
 * uuid. The lengths are in characters (code points), as Postgres's length() counts them in a
 * UTF-8 database, not in JavaScript's UTF-16 units.
 */
export function eventKeyDigest(topic: string, source: string, id: string): string {
  const text = `${codePoints(topic)}:${topic}${codePoints(source)}:${source}${id}`;
  // The one-shot hash: no Hash object per event (half the cost of createHash().update().digest()).
  const hex = hash("sha256", text, "hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const SURROGATE = /[\uD800-\uDFFF]/;

function codePoints(text: string): number {
  // UTF-16 units are code points unless a pair encodes one beyond the BMP (rare in names and ids).
  if (!SURROGATE.test(text)) return text.length;
  let count = 0;
  for (const _ of text) count++;
  return count;
}
