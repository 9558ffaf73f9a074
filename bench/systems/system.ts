// What a scenario needs from a messaging system, so that each scenario is written once and runs the
// same way on pgmesh and on every peer.
import type { FetchTally } from "../fetch-tally.ts";
import type { Stamp } from "../payload.ts";

export type SystemKey =
  | "pgmesh"
  | "pgmesh-grpc"
  | "pgmesh-before"
  | "pgboss"
  | "rabbitmq"
  | "nats"
  | "skiplocked";

export interface System {
  key: SystemKey;
  label: string;
  /** Starts what the system needs for one scenario (a fresh database, a broker, connections). */
  open(): Promise<void>;
  /** Versions and settings worth reporting; filled by open(). */
  info(): Record<string, string>;
  /** A topic (or queue, or stream) delivering to `subscriptions` independent subscriptions. */
  channel(name: string, subscriptions: number): Promise<Channel>;
  /** The Postgres database it runs in, for commit counts and table sizes (Postgres-based systems). */
  database?(): { name: string; url: string; schemas: string[] };
  /** Resident memory of the system's own process (the pgmesh broker), in bytes. */
  rssBytes?(): number | undefined;
  /**
   * pgmesh: the gRPC addresses of `count` brokers on the system's one database, its own broker
   * first; the others are started when first asked for and stopped by close().
   */
  brokerAddresses?(count: number): Promise<string[]>;
  close(): Promise<void>;
}

export interface Channel {
  /** Publishes the events as one batch; resolves once the system has confirmed them all. */
  publishBatch(stamps: Stamp[]): Promise<void>;
  /** Publishes one event on its own; resolves once confirmed. */
  publishOne(stamp: Stamp): Promise<void>;
  /**
   * Starts one consumer stream on subscription `subscription` (0-based) with at most `window`
   * unsettled events; it acks every event after handing it to `receive`. Resolves once the stream
   * is ready to receive.
   */
  consume(subscription: number, window: number, receive: (stamp: Stamp) => void): Promise<Consumer>;
  /**
   * Resolves once the system holds nothing pending or unacked on any subscription of the channel:
   * after every event was received, this is when the last ack has been taken. Throws when that
   * does not happen within `timeoutMs`.
   */
  drained(timeoutMs: number): Promise<void>;
  /**
   * The fetches its consumers' queues have served so far (cumulative), where the system has a
   * fetch to time: the Postgres-based ones.
   */
  fetches?(): Promise<FetchTally>;
  /** Deletes the topic, queues or streams, with whatever they still hold. */
  delete(): Promise<void>;
}

export interface Consumer {
  /** Stops receiving; resolves once the consumer's acks so far are sent. */
  stop(): Promise<void>;
}

/** Reads until `isDone` holds, failing after `timeoutMs` with the last reading described. */
export async function pollUntil<T>(
  read: () => Promise<T>,
  isDone: (value: T) => boolean,
  timeoutMs: number,
  describe: (value: T) => string,
  everyMs = 5,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (isDone(value)) return;
    if (performance.now() > deadline)
      throw new Error(`not drained after ${timeoutMs} ms: ${describe(value)}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
