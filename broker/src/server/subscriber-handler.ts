// pgmesh.v1.SubscriberService.Subscribe: one bidirectional stream per consumer. The first message
// opens the stream on a subscription; after that the client settles deliveries (ack, nack) and
// resizes its window (flow); the server sends deliveries, a result for every settle, and
// heartbeats while idle. Client messages are handled one at a time, in order.
import { type ServerDuplexStream, status } from "@grpc/grpc-js";
import {
  AckStatus,
  type SubscribeRequest,
  type SubscribeResponse,
  type SubscriberServiceServer,
} from "@pgmesh/sdk/gen/pgmesh/v1/subscriber";
import { type Admin, MAX_ACK_DEADLINE_SECONDS } from "../delivery/admin.ts";
import {
  type Consumer,
  DEFAULT_MAX_OUTSTANDING,
  MAX_OUTSTANDING_LIMIT,
  type SettleStatus,
} from "../delivery/consumer.ts";
import type { DeliveryService, SettleResult } from "../delivery/delivery-service.ts";
import { invalidArgument, MeshError } from "../delivery/errors.ts";
import type { Subscription } from "../delivery/model.ts";
import { MAX_NACK_DELAY_SECONDS } from "../delivery/retry-policy.ts";
import { eventToWire, wholeSeconds } from "./convert.ts";
import { RefusedRequest } from "./request-check.ts";
import { type ErrorLogger, toServiceError } from "./status.ts";
import type { RequestObserver } from "./unary.ts";

export interface SubscriberOptions {
  heartbeatIntervalMs: number;
  openTimeoutMs: number;
}

type Stream = ServerDuplexStream<SubscribeRequest, SubscribeResponse>;

const STATUS: Record<SettleStatus, AckStatus> = {
  acked: AckStatus.ACK_STATUS_ACKED,
  nacked: AckStatus.ACK_STATUS_NACKED,
  stale: AckStatus.ACK_STATUS_STALE,
  unknown: AckStatus.ACK_STATUS_UNKNOWN,
  extended: AckStatus.ACK_STATUS_EXTENDED,
  dead_lettered: AckStatus.ACK_STATUS_DEAD_LETTERED,
};

export class SubscriberStreams {
  private readonly sessions = new Set<StreamSession>();
  private accepting = true;

  constructor(
    private readonly admin: Admin,
    private readonly deliveries: DeliveryService,
    private readonly options: SubscriberOptions,
    private readonly log: ErrorLogger,
    private readonly observe: RequestObserver,
  ) {}

  handlers(): SubscriberServiceServer {
    return {
      subscribe: (call: Stream) => {
        if (!this.accepting) {
          call.emit("error", {
            code: status.UNAVAILABLE,
            details: "the broker is shutting down; reconnect to another",
          });
          return;
        }
        const session = new StreamSession(call, this.admin, this.deliveries, this.options, this.log);
        this.sessions.add(session);
        session.finished.then((code) => {
          this.sessions.delete(session);
          this.observe("Subscribe", status[code] ?? "UNKNOWN");
        });
      },
    };
  }

  /** Refuses new streams; open ones keep settling until closeAll. */
  stopAccepting(): void {
    this.accepting = false;
  }

  async endSubscription({ name, queue }: { name: string; queue: string }): Promise<void> {
    // Matching the queue too: a stream on a re-created subscription of the same name stays up.
    const ending = [...this.sessions].filter(
      (s) => s.subscription?.name === name && s.subscription.queue === queue,
    );
    await Promise.all(
      ending.map((s) => s.fail({ code: status.NOT_FOUND, details: `subscription ${name} was deleted` })),
    );
  }

  /** Ends every open stream with UNAVAILABLE (so clients reconnect elsewhere) and releases its leases. */
  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.sessions].map((s) =>
        s.fail({ code: status.UNAVAILABLE, details: "the broker is shutting down" }),
      ),
    );
  }
}

class StreamSession {
  private consumer: Consumer | undefined;
  /** Ack ids of consecutive ack messages waiting to be settled together (see the data handler). */
  private openAckBatch: string[] | undefined;
  private queue: Promise<void> = Promise.resolve();
  private ended = false;
  private lastWrite = Date.now();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly openTimer: NodeJS.Timeout;
  /** The status the stream ended with (OK when the client closed it, CANCELLED when it vanished). */
  private endCode: status = status.OK;
  private resolveFinished!: (code: status) => void;
  readonly finished = new Promise<status>((resolve) => {
    this.resolveFinished = resolve;
  });

  constructor(
    private readonly call: Stream,
    private readonly admin: Admin,
    private readonly deliveries: DeliveryService,
    private readonly options: SubscriberOptions,
    private readonly log: ErrorLogger,
  ) {
    this.openTimer = setTimeout(
      () =>
        this.fail(
          toServiceError(invalidArgument("no `open` message arrived; send `open` first"), log, "Subscribe"),
        ),
      options.openTimeoutMs,
    );
    this.heartbeat = setInterval(() => {
      if (this.consumer && Date.now() - this.lastWrite >= options.heartbeatIntervalMs) {
        this.write({ response: { $case: "heartbeat", value: { time: new Date() } } });
      }
    }, options.heartbeatIntervalMs);
    call.on("data", (request: SubscribeRequest) => {
      const message = request.request;
      // Consecutive acks that arrive while earlier messages are being handled are settled together,
      // in one transaction: a client that acks event by event is then as cheap as one that batches.
      if (message?.$case === "ack" && this.consumer) {
        if (this.openAckBatch) {
          this.openAckBatch.push(...message.value.ackIds);
          return;
        }
        const batch = [...message.value.ackIds];
        this.openAckBatch = batch;
        this.queue = this.queue
          .then(() => {
            if (this.openAckBatch === batch) this.openAckBatch = undefined;
            return this.handle({ request: { $case: "ack", value: { ackIds: batch } } });
          })
          .catch((error: unknown) => this.failWith(error));
        return;
      }
      this.openAckBatch = undefined;
      this.queue = this.queue
        .then(() => this.handle(request))
        .catch((error: unknown) => this.failWith(error));
    });
    call.on("end", () => {
      // The client half-closed: settle what is queued, release the rest, and finish cleanly.
      this.queue = this.queue.then(() => this.finish());
    });
    call.on("cancelled", () => {
      if (!this.ended) this.endCode = status.CANCELLED;
      void this.finish();
    });
    call.on("error", () => void this.finish());
    call.on("close", () => void this.finish());
  }

  get subscription(): Subscription | undefined {
    return this.consumer?.subscription;
  }

  /** Ends the stream with a status once the messages already received have been handled. */
  async failAfterPending(error: Partial<{ code: status; details: string }>): Promise<void> {
    await this.queue;
    await this.fail(error);
  }

  async fail(error: Partial<{ code: status; details: string }>): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.endCode = error.code ?? status.UNKNOWN;
      this.call.emit("error", error);
    }
    await this.finish();
  }

  private failWith(error: unknown): Promise<void> {
    return this.fail(toServiceError(error, this.log, "Subscribe"));
  }

  private async handle(request: SubscribeRequest | RefusedRequest): Promise<void> {
    if (this.ended) return;
    if (request instanceof RefusedRequest) throw invalidArgument(request.problem);
    const message = request.request;
    if (!message) throw invalidArgument("empty request: set one of open, ack, nack, extend, reject or flow");
    if (message.$case === "open") {
      if (this.consumer) throw invalidArgument("the stream is already open; `open` may only be sent once");
      await this.open(
        message.value.subscription,
        message.value.consumer,
        message.value.maxOutstandingMessages,
      );
      return;
    }
    const consumer = this.consumer;
    if (!consumer) throw invalidArgument(`the first message must be \`open\`, got \`${message.$case}\``);
    switch (message.$case) {
      case "ack":
        this.sendResults(await this.deliveries.ack(consumer, message.value.ackIds));
        return;
      case "nack": {
        const delay = wholeSeconds("nack.delay", message.value.delay);
        if (delay !== undefined && (delay < 0 || delay > MAX_NACK_DELAY_SECONDS)) {
          throw invalidArgument(`nack.delay must be 0s..${MAX_NACK_DELAY_SECONDS}s, got ${delay}s`);
        }
        this.sendResults(
          await this.deliveries.nack(consumer, message.value.ackIds, message.value.reason, delay),
        );
        return;
      }
      case "reject":
        this.sendResults(await this.deliveries.reject(consumer, message.value.ackIds, message.value.reason));
        return;
      case "extend": {
        const seconds =
          wholeSeconds("extend.duration", message.value.duration) ?? consumer.subscription.ackDeadlineSeconds;
        if (seconds < 1 || seconds > MAX_ACK_DEADLINE_SECONDS) {
          throw invalidArgument(`extend.duration must be 1s..${MAX_ACK_DEADLINE_SECONDS}s, got ${seconds}s`);
        }
        this.sendResults(await this.deliveries.extend(consumer, message.value.ackIds, seconds));
        return;
      }
      case "flow":
        this.deliveries.setWindow(consumer, checkWindow(message.value.maxOutstandingMessages, true));
        return;
    }
  }

  private async open(subscriptionName: string, consumerName: string, maxOutstanding: number): Promise<void> {
    clearTimeout(this.openTimer);
    const window = checkWindow(maxOutstanding, false);
    const subscription = await this.admin.getSubscription(subscriptionName);
    if (this.ended) return;
    this.write({
      response: {
        $case: "opened",
        value: {
          subscription: subscription.name,
          topic: subscription.topic,
          maxOutstandingMessages: window,
          ackDeadline: { seconds: subscription.ackDeadlineSeconds, nanos: 0 },
          heartbeatInterval: {
            seconds: Math.floor(this.options.heartbeatIntervalMs / 1000),
            nanos: (this.options.heartbeatIntervalMs % 1000) * 1_000_000,
          },
        },
      },
    });
    this.consumer = this.deliveries.open(subscription, consumerName.slice(0, 200), window, {
      deliver: (batch) =>
        this.write({
          response: {
            $case: "deliveries",
            value: {
              deliveries: batch.map((d) => ({
                ackId: d.ackId,
                deliveryAttempt: d.attempt,
                event: eventToWire(d.event),
              })),
            },
          },
        }),
    });
  }

  private sendResults(results: SettleResult[]): void {
    if (results.length === 0) return;
    this.write({
      response: {
        $case: "ackResults",
        value: { results: results.map((r) => ({ ackId: r.ackId, status: STATUS[r.status] })) },
      },
    });
  }

  private write(response: SubscribeResponse): void {
    if (this.ended) return;
    this.lastWrite = Date.now();
    this.call.write(response);
  }

  private finishing: Promise<void> | undefined;

  private finish(): Promise<void> {
    this.finishing ??= (async () => {
      clearTimeout(this.openTimer);
      clearInterval(this.heartbeat);
      const consumer = this.consumer;
      try {
        if (consumer) await this.deliveries.close(consumer);
      } catch (error) {
        // The leases are not lost: they lapse and are redelivered after the ack deadline.
        this.log("releasing a closed stream's deliveries failed", error);
      }
      if (!this.ended) {
        this.ended = true;
        this.call.end();
      }
      this.resolveFinished(this.endCode);
    })();
    return this.finishing;
  }
}

function checkWindow(value: number, allowZero: boolean): number {
  if (value === 0 && !allowZero) return DEFAULT_MAX_OUTSTANDING;
  if (value > MAX_OUTSTANDING_LIMIT) {
    throw new MeshError(
      "invalid_argument",
      `max_outstanding_messages is at most ${MAX_OUTSTANDING_LIMIT}, got ${value}`,
    );
  }
  return value;
}
