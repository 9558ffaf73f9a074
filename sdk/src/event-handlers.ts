// Which handler a delivered event goes to, chosen by its payload's type URL: one subscriber can
// handle every event type of a topic (`on(TypeA, ...)`, `on(TypeB, ...)`), and an event of a type
// it has no handler for is dead-lettered with a reason that says so, and reported, never dropped
// silently.
import type { EventType } from "./event-type.ts";
import { RejectEvent } from "./outcomes.ts";
import type { Dispatch, Handler } from "./received-event.ts";

/** One event type and its handler, for `client.subscribe(subscription, [on(...), on(...)])`. */
export interface EventHandler<T> {
  readonly type: EventType<T>;
  readonly handler: Handler<T>;
}

/** Pairs an event type with the handler for its events. */
export function on<T>(type: EventType<T>, handler: Handler<T>): EventHandler<T> {
  return { type, handler };
}

/** Every handler takes its own message type; `any` only erases it for the list. */
// biome-ignore lint/suspicious/noExplicitAny: a list of handlers of different message types
export type AnyEventHandler = EventHandler<any>;

/**
 * A dispatch over typed handlers. An event whose type none of them takes goes to `unhandled` when
 * given; otherwise it is dead-lettered (retrying cannot give it a handler) and `report` hears of it.
 */
export function dispatchByType(
  handlers: readonly AnyEventHandler[],
  unhandled: Handler<Uint8Array> | undefined,
  report: (error: Error) => void,
): Dispatch {
  const byTypeUrl = new Map<string, AnyEventHandler>();
  for (const h of handlers) {
    if (byTypeUrl.has(h.type.typeUrl)) throw new Error(`two handlers for ${h.type.typeName}`);
    byTypeUrl.set(h.type.typeUrl, h);
  }
  const handled = handlers.map((h) => h.type.typeName).join(", ");
  return (event) => {
    const typeUrl = event.raw.data?.typeUrl ?? "";
    const target = byTypeUrl.get(typeUrl);
    if (!target) {
      if (unhandled) return unhandled(event);
      const error = new RejectEvent(
        `no handler for ${describeType(event.type, typeUrl)} (this subscriber handles ${handled})`,
      );
      report(error);
      throw error;
    }
    return target.handler({ ...event, data: decode(target.type, event.data) });
  };
}

/** The payload's raw bytes, for a subscriber without event types. */
export const dispatchRaw =
  (handler: Handler<Uint8Array>): Dispatch =>
  (event) =>
    handler(event);

/**
 * The event's type as a person knows it: its envelope type, and the payload's message type when
 * that says something else (JSON data from the CLI travels as a google.protobuf.Value).
 */
function describeType(eventType: string, typeUrl: string): string {
  const payload = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
  if (!eventType) return payload || "an event without data";
  if (!payload) return `${eventType} (an event without data)`;
  return payload === eventType ? eventType : `${eventType} (its payload a ${payload})`;
}

function decode<T>(type: EventType<T>, bytes: Uint8Array): T {
  try {
    return type.decode(bytes);
  } catch (error) {
    // Retrying cannot make bytes decode: it is a poison message.
    throw new RejectEvent(`payload does not decode as ${type.typeName}: ${(error as Error).message}`);
  }
}
