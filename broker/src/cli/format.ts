// How the CLI shows events: one JSON object per line, payloads decoded where the type is known.
import { fromBinary, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { decodeWithSchema, type SchemaCodec } from "./schema-codec.ts";

export const VALUE_TYPE_URL = "type.googleapis.com/google.protobuf.Value";

export function eventToJson(event: Event, attempt?: number, schema?: SchemaCodec): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: event.id,
    source: event.source,
    type: event.type,
    topic: event.topic,
  };
  if (event.subject) out.subject = event.subject;
  if (event.time) out.time = event.time.toISOString();
  if (Object.keys(event.attributes).length > 0) out.attributes = event.attributes;
  if (event.orderingKey) out.orderingKey = event.orderingKey;
  if (event.publishTime) out.publishTime = event.publishTime.toISOString();
  if (attempt !== undefined) out.attempt = attempt;
  if (event.data) {
    const decoded = decodeWithSchema(schema, event.data.typeUrl, event.data.value);
    if (decoded !== undefined) {
      out.data = decoded;
    } else if (event.data.typeUrl === VALUE_TYPE_URL) {
      out.data = toJson(ValueSchema, fromBinary(ValueSchema, event.data.value));
    } else {
      out.dataTypeUrl = event.data.typeUrl;
      out.dataBase64 = Buffer.from(event.data.value).toString("base64");
    }
  }
  return out;
}
