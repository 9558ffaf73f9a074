// What a handler receives and the handler's own type: shared by the subscriber and the dispatch
// over event types, so that neither imports the other.
import type { Event } from "./gen/pgmesh/v1/event.ts";

export interface ReceivedEvent<T> {
  id: string;
  source: string;
  type: string;
  subject: string;
  time: Date | undefined;
  attributes: Record<string, string>;
  orderingKey: string;
  publishTime: Date | undefined;
  /** 1 on the first delivery. */
  attempt: number;
  /** The decoded payload (the raw bytes when subscribed without an event type). */
  data: T;
  /** The envelope as it came off the wire. */
  raw: Event;
}

export type Handler<T> = (event: ReceivedEvent<T>) => Promise<void> | void;

/** Runs the handler an event (its data still bytes) is meant for. */
export type Dispatch = (event: ReceivedEvent<Uint8Array>) => Promise<void> | void;
