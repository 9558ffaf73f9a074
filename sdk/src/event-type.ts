// A typed event: which topic a Protobuf message type is published on, and how to encode and
// decode it. Generated code (protoc-gen-pgmesh) declares one per event message; the client's
// typed publish and subscribe take it, so a message of the wrong type does not compile.
import type { Event } from "./gen/pgmesh/v1/event.ts";

/** The parts of a ts-proto message object (`MessageFns<T>`) that pgmesh needs. */
export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

export interface EventType<T> {
  readonly topic: string;
  /** The Protobuf full name, e.g. "shop.v1.OrderPlaced": the event's `type`. */
  readonly typeName: string;
  /** "type.googleapis.com/" + typeName: the payload's Any type URL. */
  readonly typeUrl: string;
  encode(message: T): Uint8Array;
  decode(data: Uint8Array): T;
  /** Type-only marker so that EventType<A> and EventType<B> are not interchangeable. */
  readonly __message?: T;
}

export const TYPE_URL_PREFIX = "type.googleapis.com/";

export function defineEvent<T>(topic: string, typeName: string, codec: MessageCodec<T>): EventType<T> {
  return Object.freeze({
    topic,
    typeName,
    typeUrl: TYPE_URL_PREFIX + typeName,
    encode: (message: T) => codec.encode(message).finish(),
    decode: (data: Uint8Array) => codec.decode(data),
  });
}

/** Envelope fields a typed publish may set; `type` and `data` come from the event type. */
export interface EventEnvelope {
  id?: string;
  source?: string;
  subject?: string;
  time?: Date;
  attributes?: Record<string, string>;
  orderingKey?: string;
  deliverAfter?: Date;
}

export interface Publishable<T> extends EventEnvelope {
  message: T;
}

// A message object may itself have a `message` field; only an object with nothing but envelope
// fields besides `message` is taken as Publishable.
const ENVELOPE_KEYS = new Set([
  "message",
  "id",
  "source",
  "subject",
  "time",
  "attributes",
  "orderingKey",
  "deliverAfter",
]);
function isPublishable<T>(item: unknown): item is Publishable<T> {
  return (
    typeof item === "object" &&
    item !== null &&
    "message" in item &&
    Object.keys(item).every((k) => ENVELOPE_KEYS.has(k))
  );
}

/**
 * The wire fields of one typed event: its envelope, `type` from the event type, and the message
 * packed as the payload. Shared by the client's publish and the outbox.
 */
export function typedEvent<T>(
  type: EventType<T>,
  item: T | Publishable<T>,
): EventEnvelope & Pick<Event, "type" | "data"> {
  const { message, ...envelope } = isPublishable<T>(item) ? item : { message: item as T };
  return {
    ...envelope,
    type: type.typeName,
    data: { typeUrl: type.typeUrl, value: Buffer.from(type.encode(message)) },
  };
}
