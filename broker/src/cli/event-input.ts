// Turns the JSON a user types into an Event. `data` may be any JSON value: it travels as a
// google.protobuf.Value, which every Protobuf runtime can decode. Binary payloads of another type
// go as `dataBase64` with `dataTypeUrl`.
import { fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { TYPE_URL_PREFIX } from "@pgmesh/sdk";
import { VALUE_TYPE_URL } from "./format.ts";

const KNOWN = new Set([
  "id",
  "source",
  "type",
  "subject",
  "time",
  "attributes",
  "orderingKey",
  "data",
  "dataBase64",
  "dataTypeUrl",
]);

/** Encodes JSON `data` as a registered Protobuf type; returns that type's full name and bytes. */
export type DataEncoder = (typeName: string, data: unknown) => { typeName: string; bytes: Uint8Array };

export function eventFromJson(
  text: string,
  defaults: { source: string },
  encodeData?: DataEncoder,
): Partial<Event> {
  let input: Record<string, unknown>;
  try {
    input = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`the event is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new Error('the event must be a JSON object, e.g. {"type":"shop.OrderPlaced","data":{"id":1}}');
  }
  const unknown = Object.keys(input).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0)
    throw new Error(`unknown event field(s): ${unknown.join(", ")}; known: ${[...KNOWN].join(", ")}`);
  const stringField = (name: string) => {
    const value = input[name];
    if (value === undefined) return "";
    if (typeof value !== "string") throw new Error(`${name} must be a string`);
    return value;
  };
  const event: Partial<Event> = {
    id: stringField("id"),
    source: stringField("source") || defaults.source,
    type: stringField("type"),
    subject: stringField("subject"),
    orderingKey: stringField("orderingKey"),
    attributes: (input.attributes as Record<string, string> | undefined) ?? {},
  };
  const time = stringField("time");
  if (time) {
    const parsed = new Date(time);
    if (Number.isNaN(parsed.getTime()))
      throw new Error(`time ${JSON.stringify(time)} is not an RFC 3339 timestamp`);
    event.time = parsed;
  }
  if (input.data !== undefined && input.dataBase64 !== undefined)
    throw new Error("give either data or dataBase64, not both");
  if (input.data !== undefined && encodeData) {
    const { typeName, bytes } = encodeData(event.type ?? "", input.data);
    event.type ||= typeName;
    event.data = { typeUrl: TYPE_URL_PREFIX + typeName, value: Buffer.from(bytes) };
  } else if (input.data !== undefined) {
    const value = fromJson(ValueSchema, input.data as JsonValue);
    event.data = { typeUrl: VALUE_TYPE_URL, value: Buffer.from(toBinary(ValueSchema, value)) };
  } else if (input.dataBase64 !== undefined) {
    const typeUrl = stringField("dataTypeUrl");
    if (!typeUrl)
      throw new Error("dataBase64 needs dataTypeUrl, e.g. type.googleapis.com/shop.v1.OrderPlaced");
    event.data = { typeUrl, value: Buffer.from(stringField("dataBase64"), "base64") };
  }
  return event;
}
