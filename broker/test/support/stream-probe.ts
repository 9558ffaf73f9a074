// Drives one Subscribe stream from a test: sends requests, and waits for what the server sends.
import { type ClientDuplexStream, Metadata, type ServiceError } from "@grpc/grpc-js";
import type {
  AckResult,
  Delivery,
  Opened,
  SubscribeRequest,
  SubscribeResponse,
} from "@pgmesh/proto/pgmesh/v1/subscriber";
import type { PgmeshClient } from "@pgmesh/sdk";

export class StreamProbe {
  readonly deliveries: Delivery[] = [];
  readonly ackResults: AckResult[] = [];
  heartbeats = 0;
  /** When each message arrived (ms since epoch), by kind, for timing checks. */
  readonly arrivals: { kind: string; at: number }[] = [];
  opened: Opened | undefined;
  /** The stream's final status; settles when the server ends the stream. */
  readonly ended: Promise<{ code: number; details: string }>;
  private waiters: (() => void)[] = [];

  private constructor(readonly call: ClientDuplexStream<SubscribeRequest, SubscribeResponse>) {
    call.on("data", (message: SubscribeResponse) => {
      const response = message.response;
      if (response?.$case === "opened") this.opened = response.value;
      if (response?.$case === "deliveries") this.deliveries.push(...response.value.deliveries);
      if (response?.$case === "ackResults") this.ackResults.push(...response.value.results);
      if (response?.$case === "heartbeat") this.heartbeats++;
      if (response) this.arrivals.push({ kind: response.$case, at: Date.now() });
      this.notify();
    });
    this.ended = new Promise((resolve) => {
      call.on("status", (status) => {
        resolve({ code: status.code, details: status.details });
        this.notify();
      });
      call.on("error", (error: ServiceError) => {
        resolve({ code: error.code, details: error.details });
        this.notify();
      });
    });
  }

  /** Opens a raw stream and sends nothing. */
  static raw(client: PgmeshClient): StreamProbe {
    // The client's metadata carries its token; a bare stub (some tests pass one) has none.
    return new StreamProbe(client.subscriber.subscribe(client.metadata?.() ?? new Metadata()));
  }

  /** Opens a stream on the subscription and waits for `opened`. */
  static async open(
    client: PgmeshClient,
    subscription: string,
    maxOutstandingMessages = 100,
    consumer = "test",
    maxOutstandingBytes = 0,
  ): Promise<StreamProbe> {
    const probe = StreamProbe.raw(client);
    probe.send({
      request: {
        $case: "open",
        value: { subscription, consumer, maxOutstandingMessages, maxOutstandingBytes },
      },
    });
    await probe.until(() => probe.opened !== undefined, "opened");
    return probe;
  }

  send(request: SubscribeRequest): void {
    this.call.write(request);
  }

  ack(ackIds: string[]): void {
    this.send({ request: { $case: "ack", value: { ackIds } } });
  }

  nack(ackIds: string[], reason = "test", delaySeconds?: number): void {
    const delay = delaySeconds === undefined ? undefined : { seconds: delaySeconds, nanos: 0 };
    this.send({ request: { $case: "nack", value: { ackIds, reason, delay } } });
  }

  reject(ackIds: string[], reason: string): void {
    this.send({ request: { $case: "reject", value: { ackIds, reason } } });
  }

  extend(ackIds: string[], seconds: number): void {
    this.send({ request: { $case: "extend", value: { ackIds, duration: { seconds, nanos: 0 } } } });
  }

  /** Sends a settle of some kind and waits until the server has answered every id. */
  async settleAndWait(send: () => void, count: number): Promise<AckResult[]> {
    const before = this.ackResults.length;
    send();
    await this.until(() => this.ackResults.length >= before + count, `${count} results`);
    return this.ackResults.slice(before, before + count);
  }

  flow(maxOutstandingMessages: number, maxOutstandingBytes?: number): void {
    this.send({ request: { $case: "flow", value: { maxOutstandingMessages, maxOutstandingBytes } } });
  }

  /** Acks and waits until the server has answered every id. */
  async ackAndWait(ackIds: string[]): Promise<AckResult[]> {
    const before = this.ackResults.length;
    this.ack(ackIds);
    await this.until(() => this.ackResults.length >= before + ackIds.length, `${ackIds.length} ack results`);
    return this.ackResults.slice(before, before + ackIds.length);
  }

  async waitForDeliveries(count: number, timeoutMs = 10_000): Promise<Delivery[]> {
    await this.until(() => this.deliveries.length >= count, `${count} deliveries`, timeoutMs);
    return this.deliveries.slice(0, count);
  }

  /** Half-closes and waits for the server to end the stream. */
  async close(): Promise<void> {
    this.call.end();
    await this.ended;
  }

  /** Drops the stream the way a crashed client would. */
  cancel(): void {
    this.call.cancel();
  }

  async until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what} (have ${this.deliveries.length} deliveries, ${this.ackResults.length} ack results)`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
