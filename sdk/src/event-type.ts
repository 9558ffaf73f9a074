// A typed event: which topic a Protobuf message type is published on, and how to encode and
// decode it. Generated code (protoc-gen-pgmesh) declares one per event message; the client's
// typed publish and subscribe take it, so a message of the wrong type does not compile.
import type { Event } from "@pgmesh/proto/pgmesh/v1/event";

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

/**
 * A typed message with its envelope, for publishing several at once. The message is always under
 * `message`: nothing is guessed from the message's own field names (a message may have fields named
 * `id` or `message` of its own).
 */
export interface Publishable<T> extends EventEnvelope {
  message: T;
}

/**
 * The wire fields of one typed event: its envelope, `type` from the event type, and the message
 * packed as the payload. Shared by the client's publish and the outbox.
 */
export function typedEvent<T>(
  type: EventType<T>,
  { message, ...envelope }: Publishable<T>,
): EventEnvelope & Pick<Event, "type" | "data"> {
  return {
    ...envelope,
    type: type.typeName,
    data: { typeUrl: type.typeUrl, value: Buffer.from(type.encode(message)) },
  };
}
