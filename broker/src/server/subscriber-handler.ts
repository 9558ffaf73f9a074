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
} from "@pgmesh/proto/pgmesh/v1/subscriber";
import type { Admin } from "../delivery/admin.ts";
import {
  type Consumer,
  DEFAULT_MAX_OUTSTANDING,
  MAX_OUTSTANDING_LIMIT,
  type SettleStatus,
  type Window,
} from "../delivery/consumer.ts";
import type { DeliveryService, SettleResult } from "../delivery/delivery-service.ts";
import { type ErrorCode, invalidArgument, MeshError } from "../delivery/errors.ts";
import type { Subscription } from "../delivery/model.ts";
import { eventToWire, wholeSeconds } from "./convert.ts";
import { ackResultWireBound, deliveryWireBound, ENVELOPE_BOUND, splitByBytes } from "./message-size.ts";
import { RefusedRequest } from "./request-check.ts";
import { type ErrorLogger, toServiceError } from "./status.ts";
import type { RequestObserver } from "./unary.ts";

export interface SubscriberOptions {
  heartbeatIntervalMs: number;
  openTimeoutMs: number;
  /** No message sent on a stream is larger than this; deliveries and results are split under it. */
  maxMessageBytes: number;
}

type Stream = ServerDuplexStream<SubscribeRequest, SubscribeResponse>;

const STATUS: Record<SettleStatus, AckStatus> = {
  acked: AckStatus.ACK_STATUS_ACKED,
  nacked: AckStatus.ACK_STATUS_NACKED,
  stale: AckStatus.ACK_STATUS_STALE,
  unknown: AckStatus.ACK_STATUS_UNKNOWN,
  extended: AckStatus.ACK_STATUS_EXTENDED,
  dead_lettered: AckStatus.ACK_STATUS_DEAD_LETTERED,
  invalid_argument: AckStatus.ACK_STATUS_INVALID_ARGUMENT,
  failed_precondition: AckStatus.ACK_STATUS_FAILED_PRECONDITION,
};

/** The errors a settle may raise that refuse it for its ack ids alone. */
const REFUSALS: Partial<Record<ErrorCode, "invalid_argument" | "failed_precondition">> = {
  invalid_argument: "invalid_argument",
  failed_precondition: "failed_precondition",
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

/**
 * Where a stream is in its life. Each phase carries what only it has: a consumer exists once the
 * stream is open, and an ended stream may still hold one whose leases are being released.
 */
type SessionState =
  | { phase: "awaiting_open" }
  | { phase: "open"; consumer: Consumer }
  | { phase: "ended"; consumer: Consumer | undefined };

class StreamSession {
  private state: SessionState = { phase: "awaiting_open" };
  /** Ack ids of consecutive ack messages waiting to be settled together (see the data handler). */
  private openAckBatch: string[] | undefined;
  private queue: Promise<void> = Promise.resolve();
  /** Fires `heartbeatIntervalMs` after the last write; every write re-arms it (see write()). */
  private heartbeat: NodeJS.Timeout | undefined;
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
    call.on("data", (request: SubscribeRequest) => {
      const message = request.request;
      // Consecutive acks that arrive while earlier messages are being handled are settled together,
      // in one transaction: a client that acks event by event is then as cheap as one that batches.
      if (message?.$case === "ack" && this.state.phase === "open") {
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
      if (this.state.phase !== "ended") this.endCode = status.CANCELLED;
      void this.finish();
    });
    call.on("error", () => void this.finish());
    call.on("close", () => void this.finish());
  }

  get subscription(): Subscription | undefined {
    return this.state.phase === "awaiting_open" ? undefined : this.state.consumer?.subscription;
  }

  async fail(error: Partial<{ code: status; details: string }>): Promise<void> {
    if (this.state.phase !== "ended") {
      this.state = { phase: "ended", consumer: this.consumerIfAny() };
      this.endCode = error.code ?? status.UNKNOWN;
      this.call.emit("error", error);
    }
    await this.finish();
  }

  private failWith(error: unknown): Promise<void> {
    return this.fail(toServiceError(error, this.log, "Subscribe"));
  }

  private consumerIfAny(): Consumer | undefined {
    return this.state.phase === "awaiting_open" ? undefined : this.state.consumer;
  }

  private async handle(request: SubscribeRequest | RefusedRequest): Promise<void> {
    if (this.state.phase === "ended") return;
    if (request instanceof RefusedRequest) throw invalidArgument(request.problem);
    const message = request.request;
    if (!message) throw invalidArgument("empty request: set one of open, ack, nack, extend, reject or flow");
    if (message.$case === "open") {
      if (this.state.phase === "open") {
        throw invalidArgument("the stream is already open; `open` may only be sent once");
      }
      await this.open(message.value.subscription, message.value.consumer, {
        messages: checkWindow(message.value.maxOutstandingMessages, false),
        bytes: message.value.maxOutstandingBytes,
      });
      return;
    }
    if (this.state.phase !== "open") {
      throw invalidArgument(`the first message must be \`open\`, got \`${message.$case}\``);
    }
    const consumer = this.state.consumer;
    switch (message.$case) {
      case "ack":
        return this.settle(consumer, message.value.ackIds, () =>
          this.deliveries.ack(consumer, message.value.ackIds),
        );
      case "nack":
        return this.settle(consumer, message.value.ackIds, () =>
          this.deliveries.nack(
            consumer,
            message.value.ackIds,
            message.value.reason,
            wholeSeconds("nack.delay", message.value.delay),
          ),
        );
      case "reject":
        return this.settle(consumer, message.value.ackIds, () =>
          this.deliveries.reject(consumer, message.value.ackIds, message.value.reason),
        );
      case "extend":
        return this.settle(consumer, message.value.ackIds, () =>
          this.deliveries.extend(
            consumer,
            message.value.ackIds,
            wholeSeconds("extend.duration", message.value.duration) ??
              consumer.subscription.ackDeadlineSeconds,
          ),
        );
      case "flow":
        this.deliveries.setWindow(
          consumer,
          checkWindow(message.value.maxOutstandingMessages, true),
          message.value.maxOutstandingBytes,
        );
        return;
    }
  }

  /**
   * Runs a settle and answers it per ack id. A settle the broker refuses (a bad argument, or one
   * the subscription does not allow) is answered with the refusal for its ids alone: one event
   * never ends the stream, and the other deliveries it holds are not charged an attempt.
   */
  private async settle(consumer: Consumer, ackIds: string[], run: () => Promise<SettleResult[]>) {
    let results: SettleResult[];
    try {
      results = await run();
    } catch (error) {
      const refusal = error instanceof MeshError ? REFUSALS[error.code] : undefined;
      if (!refusal) throw error;
      results = this.deliveries.refuse(consumer, ackIds, refusal, (error as MeshError).message);
    }
    this.sendResults(results);
  }

  private async open(subscriptionName: string, consumerName: string, window: Window): Promise<void> {
    clearTimeout(this.openTimer);
    const subscription = await this.admin.getSubscription(subscriptionName);
    if (this.state.phase === "ended") return;
    this.write({
      response: {
        $case: "opened",
        value: {
          subscription: subscription.name,
          topic: subscription.topic,
          maxOutstandingMessages: window.messages,
          maxOutstandingBytes: window.bytes,
          maxMessageBytes: this.options.maxMessageBytes,
          ackDeadline: { seconds: subscription.ackDeadlineSeconds, nanos: 0 },
          heartbeatInterval: {
            seconds: Math.floor(this.options.heartbeatIntervalMs / 1000),
            nanos: (this.options.heartbeatIntervalMs % 1000) * 1_000_000,
          },
        },
      },
    });
    // A timer re-armed on every write, not a fixed tick that checks the time since the last write:
    // such a tick skipped its first beat (the write came a moment after the tick started) and every
    // beat after a delivery, so an idle stream heard from the broker every two intervals.
    this.heartbeat = setTimeout(
      () => this.write({ response: { $case: "heartbeat", value: { time: new Date() } } }),
      this.options.heartbeatIntervalMs,
    );
    const consumer = this.deliveries.open(subscription, consumerName.slice(0, 200), window, {
      deliver: (batch) => {
        const runs = splitByBytes(batch, (d) => deliveryWireBound(d.ackId, d.event), this.messageBudget);
        for (const run of runs) {
          this.write({
            response: {
              $case: "deliveries",
              value: {
                deliveries: run.map((d) => ({
                  ackId: d.ackId,
                  deliveryAttempt: d.attempt,
                  event: eventToWire(d.event),
                })),
              },
            },
          });
        }
      },
    });
    this.state = { phase: "open", consumer };
  }

  private sendResults(results: SettleResult[]): void {
    const runs = splitByBytes(
      results,
      (r) => ackResultWireBound(r.ackId, r.message ?? ""),
      this.messageBudget,
    );
    for (const run of runs) {
      this.write({
        response: {
          $case: "ackResults",
          value: {
            results: run.map((r) => ({ ackId: r.ackId, status: STATUS[r.status], message: r.message ?? "" })),
          },
        },
      });
    }
  }

  /** What the list in one message may take, its framing aside. */
  private get messageBudget(): number {
    return this.options.maxMessageBytes - ENVELOPE_BOUND;
  }

  private write(response: SubscribeResponse): void {
    if (this.state.phase === "ended") return;
    this.heartbeat?.refresh();
    this.call.write(response);
  }

  private finishing: Promise<void> | undefined;

  private finish(): Promise<void> {
    this.finishing ??= (async () => {
      clearTimeout(this.openTimer);
      clearTimeout(this.heartbeat);
      const consumer = this.consumerIfAny();
      const alreadyEnded = this.state.phase === "ended";
      this.state = { phase: "ended", consumer };
      try {
        if (consumer) await this.deliveries.close(consumer);
      } catch (error) {
        // The leases are not lost: they lapse and are redelivered after the ack deadline.
        this.log("releasing a closed stream's deliveries failed", error);
      }
      if (!alreadyEnded) this.call.end();
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
