// The size of an event as the publish limit and the byte window count it: the payload plus every
// string field and attribute, in UTF-8 bytes (protobuf framing excluded).
import type { EventEnvelope } from "./model.ts";

export function eventBytes(event: EventEnvelope): number {
  let size = event.data.byteLength;
  for (const text of [
    event.id,
    event.source,
    event.type,
    event.subject,
    event.orderingKey,
    event.dataTypeUrl,
  ]) {
    size += Buffer.byteLength(text);
  }
  for (const [name, value] of Object.entries(event.attributes))
    size += Buffer.byteLength(name) + Buffer.byteLength(value);
  return size;
}
