// Stream-subscribes with a handler: acks when the handler resolves, nacks when it throws (or
// rejects / retries after a delay when it throws RejectEvent / RetryEventAfter), runs at most
// `concurrency` handlers at once, extends the lease of a handler still running at half the ack
// deadline, reconnects with jittered backoff when the stream breaks, and drains on close().
import {
  type ClientDuplexStream,
  connectivityState,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import type { Dispatch } from "./event-handlers.ts";
import type { Event } from "./gen/pgmesh/v1/event.ts";
import {
  type AckResult,
  AckStatus,
  type Delivery,
  type SubscribeRequest,
  type SubscribeResponse,
  type SubscriberServiceClient,
} from "./gen/pgmesh/v1/subscriber.ts";
import { RejectEvent, RetryEventAfter } from "./outcomes.ts";

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

export interface SubscribeOptions {
  /** Handlers running at once (default 10). */
  concurrency?: number;
  /**
   * Flow control, apart from concurrency: how many delivered but unsettled events the broker lets
   * this subscriber hold, running or waiting for a free handler (default: `concurrency`).
   */
  maxOutstandingMessages?: number;
  /**
   * Flow control by size: the broker sends no more deliveries while the payloads this subscriber
   * holds unsettled add up to this many bytes (default: no limit; one event is always let through).
   */
  maxOutstandingBytes?: number;
  /**
   * How long a handler's lease is extended at most, in ms (default 1 hour). Past it the lease is
   * left to lapse and the broker redelivers the event: a stuck handler does not hold it for ever.
   */
  maxExtensionMs?: number;
  /**
   * A handler still running after this many ms is given up on (default: no limit): the event is
   * nacked (retried by the subscription's policy) and its handler slot freed. The handler itself
   * cannot be stopped and keeps running; what it does after that is ignored.
   */
  handlerTimeoutMs?: number;
  /**
   * Wraps every handler call, for metrics and tracing: call `handle()` (it runs the handler and
   * rejects as the handler does) and time it, or run it inside a span continued from the event's
   * `traceparent` attribute. Its outcome is the handler's.
   */
  aroundHandler?: (event: ReceivedEvent<Uint8Array>, handle: () => Promise<void>) => Promise<void>;
  /** A name for this consumer in the broker's logs. */
  consumerName?: string;
  /** Reconnect backoff: first delay and cap, in ms (defaults 100 and 1000), with full jitter. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /** How long close() waits for running handlers to finish and settle, in ms (default 10000). */
  closeTimeoutMs?: number;
  /** Called with errors that do not stop the subscriber (a dropped stream, a refused settle). */
  onError?: (error: unknown) => void;
  /**
   * With a handler per event type: the handler for events of any other type (data is the payload's
   * bytes). Without it such an event is dead-lettered and reported to `onError`.
   */
  unhandled?: Handler<Uint8Array>;
}

// What the broker accepts (proto/pgmesh/v1/subscriber.proto): the SDK never asks for more, so a
// handler's outcome cannot be refused for its size.
const MAX_WINDOW = 10_000;
const MAX_REASON_LENGTH = 1024;
const MAX_NACK_DELAY_SECONDS = 24 * 60 * 60;
const MAX_EXTEND_SECONDS = 60 * 60;

/** A settle the broker refused for one delivery (its AckResult said why); the subscriber goes on. */
export class SettleRefused extends Error {
  constructor(
    readonly ackId: string,
    readonly settle: "nack" | "reject" | "fallback nack" | "extend",
    readonly status: AckStatus,
    readonly reason: string,
    readonly fallback: "nacked" | "none",
  ) {
    super(
      `the broker refused to ${settle} ${ackId}: ${reason}` +
        (fallback === "nacked" ? "; nacked it instead" : ""),
    );
    this.name = "SettleRefused";
  }
}

/** Errors that reconnecting cannot fix: the subscription is wrong, not the connection. */
const FATAL = new Set([
  status.NOT_FOUND,
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
]);

type Call = ClientDuplexStream<SubscribeRequest, SubscribeResponse>;

/**
 * The subscriber's stream to the broker:
 * - `none`: between streams (a reconnect is scheduled), or stopped;
 * - `waiting`: started with waitForReady and `open` sent, not answered yet. It holds nothing, so
 *   close() cuts it instead of draining it, and every reconnect interval `report` tells onError that
 *   it still waits;
 * - `open`: the broker answered `opened`; deliveries flow.
 */
type Stream =
  | { state: "none" }
  | { state: "waiting"; call: Call; report: NodeJS.Timeout }
  | { state: "open"; call: Call };

export class Subscriber {
  private stream: Stream = { state: "none" };
  private closing = false;
  private running = 0;
  private readonly backlog: Delivery[] = [];
  private readonly idle: (() => void)[] = [];
  private ackDeadlineMs = 60_000;
  private pendingAcks: string[] = [];
  private ackCall: Call | undefined;
  private ackFlush: NodeJS.Immediate | undefined;
  /** Nacks and rejects sent and not yet answered, so that a refused one can fall back to a nack. */
  private readonly unanswered = new Map<string, "nack" | "reject" | "fallback nack">();
  private reconnectDelay: number;
  private readonly concurrency: number;
  /** Resolves when the subscriber stops for good: after close(), or on an error it cannot retry. */
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (error: unknown) => void;
  /** Resolves once the first stream is open; rejects when the subscription cannot be opened. */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: unknown) => void;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: SubscriberServiceClient,
    private readonly subscription: string,
    private readonly dispatch: Dispatch,
    private readonly options: SubscribeOptions = {},
    private readonly metadata: () => Metadata = () => new Metadata(),
  ) {
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 10));
    this.reconnectDelay = options.reconnectInitialMs ?? 100;
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // A caller that only awaits `done` must not see an unhandled rejection from `ready`.
    this.ready.catch(() => {});
    // A caller that only awaits `ready` must not see an unhandled rejection from `done`.
    this.done.catch(() => {});
    this.connect();
  }

  /** The current stream's call, waiting or open. */
  private get call(): Call | undefined {
    return this.stream.state === "none" ? undefined : this.stream.call;
  }

  private stopWaitingReport(): void {
    if (this.stream.state === "waiting") clearInterval(this.stream.report);
  }

  /**
   * Stops taking deliveries, lets running handlers finish and settle (for up to `timeoutMs`), then
   * ends the stream. Leaves no timer behind: once it resolves and the client is closed, the process
   * can exit at once. Deliveries not settled by then go back to the broker.
   */
  async close(timeoutMs = this.options.closeTimeoutMs ?? 10_000): Promise<void> {
    if (this.closing) return this.done.catch(() => {});
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.stopWaitingReport();
    this.rejectReady(new Error("the subscriber was closed before its stream opened"));
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timeLeft = () =>
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
    try {
      this.call?.write({ request: { $case: "flow", value: { maxOutstandingMessages: 0 } } });
      // Deliveries not yet started go back to the broker when the stream ends.
      this.backlog.length = 0;
      const drained = (async () => {
        while (this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
      })();
      await Promise.race([drained, timeLeft()]);
      clearTimeout(timer);
      this.flushAcks();
      // A stream still waiting for the broker has nothing to drain: the finally block cuts it.
      if (this.stream.state !== "open") return;
      this.call?.end();
      await Promise.race([this.done.catch(() => {}), timeLeft()]);
    } finally {
      clearTimeout(timer);
      // A stream the broker has not ended by now is cut.
      this.call?.cancel();
      this.resolveDone();
    }
  }

  private connect(): void {
    let call: Call;
    // Wait for the channel instead of failing at once while it is down: the stream then opens the
    // moment the channel reconnects (its backoff is capped at 1 s), rather than at this
    // subscriber's next attempt after that, which could add a second backoff on top.
    const metadata = this.metadata();
    metadata.setOptions({ waitForReady: true });
    try {
      call = this.client.subscribe(metadata);
    } catch (error) {
      // The client was closed under the subscriber ("Channel has been shut down"): nothing to retry.
      this.rejectReady(error);
      this.rejectDone(error);
      return;
    }
    this.stream = { state: "waiting", call, report: this.reportWhileWaiting(call) };
    call.on("data", (message: SubscribeResponse) => this.onMessage(message));
    call.on("error", (error: ServiceError) => this.onBroken(call, error));
    call.on("end", () => this.onBroken(call, undefined));
    call.write({
      request: {
        $case: "open",
        value: {
          subscription: this.subscription,
          consumer: this.options.consumerName ?? "",
          maxOutstandingMessages: Math.min(
            this.options.maxOutstandingMessages ?? this.concurrency,
            MAX_WINDOW,
          ),
          maxOutstandingBytes: this.options.maxOutstandingBytes ?? 0,
        },
      },
    });
  }

  private onMessage(message: SubscribeResponse): void {
    const response = message.response;
    if (!response) return;
    if (response.$case === "opened") {
      if (this.stream.state === "waiting") {
        clearInterval(this.stream.report);
        this.stream = { state: "open", call: this.stream.call };
      }
      this.ackDeadlineMs = (response.value.ackDeadline?.seconds ?? 60) * 1000;
      this.reconnectDelay = this.options.reconnectInitialMs ?? 100;
      this.resolveReady();
    } else if (response.$case === "deliveries") {
      this.backlog.push(...response.value.deliveries);
      this.pump();
    } else if (response.$case === "ackResults") {
      for (const result of response.value.results) this.onResult(result);
    }
  }

  /**
   * A refused settle changed nothing: the delivery is still ours. A refused reject or delayed nack
   * falls back to a plain nack (which the broker always takes), so one event never holds a lease
   * until it lapses; every refusal is reported through onError.
   */
  private onResult(result: AckResult): void {
    const sent = this.unanswered.get(result.ackId);
    this.unanswered.delete(result.ackId);
    const refused =
      result.status === AckStatus.ACK_STATUS_INVALID_ARGUMENT ||
      result.status === AckStatus.ACK_STATUS_FAILED_PRECONDITION;
    if (!refused) return;
    const call = this.call;
    const fallback = (sent === "nack" || sent === "reject") && call !== undefined;
    if (fallback) {
      this.unanswered.set(result.ackId, "fallback nack");
      call.write({
        request: {
          $case: "nack",
          value: { ackIds: [result.ackId], reason: settleReason(result.message), delay: undefined },
        },
      });
    }
    this.options.onError?.(
      new SettleRefused(
        result.ackId,
        sent ?? "extend",
        result.status,
        result.message,
        fallback ? "nacked" : "none",
      ),
    );
  }

  private onBroken(call: Call, error: ServiceError | undefined): void {
    if (call !== this.call) return;
    this.stopWaitingReport();
    this.stream = { state: "none" };
    // What this stream held is released by the broker; handlers still running settle into the void.
    this.backlog.length = 0;
    this.unanswered.clear();
    if (this.closing) {
      this.resolveDone();
      return;
    }
    if (error && FATAL.has(error.code)) {
      this.rejectReady(error);
      this.rejectDone(error);
      return;
    }
    if (error) this.options.onError?.(error);
    const cap = this.options.reconnectMaxMs ?? 1000;
    const delay = Math.random() * this.reconnectDelay;
    this.reconnectDelay = Math.min(cap, this.reconnectDelay * 2);
    this.reconnectTimer = setTimeout(() => {
      if (!this.closing) this.connect();
    }, delay);
  }

  /**
   * A stream waiting for the broker (waitForReady) fails nothing, so without this a wrong address
   * or a broker that is down would be silent: every reconnect interval it still waits, onError
   * hears an UNAVAILABLE naming how long and the connection's state.
   */
  private reportWhileWaiting(call: Call): NodeJS.Timeout {
    const since = Date.now();
    const report = setInterval(() => {
      if (this.stream.state !== "waiting" || this.stream.call !== call || this.closing) {
        clearInterval(report);
        return;
      }
      const state = connectivityState[this.client.getChannel().getConnectivityState(false)];
      const waited = ((Date.now() - since) / 1000).toFixed(1);
      const error = Object.assign(
        new Error(
          `${status.UNAVAILABLE} UNAVAILABLE: waited ${waited} s for the broker (connection ${state})`,
        ),
        { code: status.UNAVAILABLE, details: `waited ${waited} s for the broker (connection ${state})` },
      );
      this.options.onError?.(error);
    }, this.options.reconnectMaxMs ?? 1000);
    report.unref();
    return report;
  }

  private pump(): void {
    while (this.running < this.concurrency && this.backlog.length > 0 && !this.closing) {
      const delivery = this.backlog.shift() as Delivery;
      const call = this.call;
      if (!call) return;
      this.running++;
      void this.handle(call, delivery).finally(() => {
        this.running--;
        if (this.running === 0) for (const wake of this.idle.splice(0)) wake();
        this.pump();
      });
    }
  }

  private async handle(call: Call, delivery: Delivery): Promise<void> {
    const ackIds = [delivery.ackId];
    const started = Date.now();
    const maxExtensionMs = this.options.maxExtensionMs ?? 60 * 60_000;
    // Keep the lease while the handler works: extend at half the deadline, every half deadline,
    // up to maxExtensionMs.
    const extender = setInterval(() => {
      if (Date.now() - started >= maxExtensionMs) {
        clearInterval(extender);
        return;
      }
      const seconds = Math.min(MAX_EXTEND_SECONDS, Math.max(1, Math.round(this.ackDeadlineMs / 1000)));
      call.write({ request: { $case: "extend", value: { ackIds, duration: { seconds, nanos: 0 } } } });
    }, this.ackDeadlineMs / 2);
    try {
      const received = this.toReceived(delivery);
      const handle = async () => this.dispatch(received);
      const around = this.options.aroundHandler;
      await withTimeout(around ? around(received, handle) : handle(), this.options.handlerTimeoutMs);
      this.queueAck(call, delivery.ackId);
    } catch (error) {
      if (error instanceof RejectEvent) {
        this.unanswered.set(delivery.ackId, "reject");
        call.write({ request: { $case: "reject", value: { ackIds, reason: settleReason(error.reason) } } });
      } else if (error instanceof RetryEventAfter) {
        const seconds = Number.isFinite(error.seconds) ? Math.round(error.seconds) : MAX_NACK_DELAY_SECONDS;
        const delay = { seconds: Math.min(MAX_NACK_DELAY_SECONDS, Math.max(0, seconds)), nanos: 0 };
        this.unanswered.set(delivery.ackId, "nack");
        call.write({
          request: { $case: "nack", value: { ackIds, reason: settleReason(error.reason), delay } },
        });
      } else {
        const reason = error instanceof Error ? error.message : String(error);
        this.unanswered.set(delivery.ackId, "nack");
        call.write({
          request: { $case: "nack", value: { ackIds, reason: settleReason(reason), delay: undefined } },
        });
      }
    } finally {
      clearInterval(extender);
    }
  }

  /**
   * Acks are sent in one message per event-loop turn rather than one per event: the broker settles
   * a message's ids in one transaction, so this is what lets a busy consumer keep up.
   */
  private queueAck(call: Call, ackId: string): void {
    if (this.ackCall !== call) {
      this.flushAcks();
      this.ackCall = call;
    }
    this.pendingAcks.push(ackId);
    if (!this.ackFlush) this.ackFlush = setImmediate(() => this.flushAcks());
  }

  private flushAcks(): void {
    if (this.ackFlush) clearImmediate(this.ackFlush);
    this.ackFlush = undefined;
    const ackIds = this.pendingAcks.splice(0);
    // A stream that broke took its leases with it: those acks are moot (the events come back).
    if (ackIds.length > 0 && this.ackCall && this.ackCall === this.call) {
      this.ackCall.write({ request: { $case: "ack", value: { ackIds } } });
    }
  }

  private toReceived(delivery: Delivery): ReceivedEvent<Uint8Array> {
    const event = delivery.event as Event;
    return {
      id: event.id,
      source: event.source,
      type: event.type,
      subject: event.subject,
      time: event.time,
      attributes: event.attributes,
      orderingKey: event.orderingKey,
      publishTime: event.publishTime,
      attempt: delivery.deliveryAttempt,
      data: event.data?.value ?? new Uint8Array(),
      raw: event,
    };
  }
}

/** The handler's outcome, or a failure once `ms` have passed (no limit when undefined). */
function withTimeout(work: Promise<void> | void, ms: number | undefined): Promise<void> {
  if (ms === undefined) return Promise.resolve(work);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the handler did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([Promise.resolve(work), timeout]).finally(() => clearTimeout(timer));
}

/** A reason the broker stores: no NUL characters, at most MAX_REASON_LENGTH characters. */
function settleReason(reason: string): string {
  return reason.replaceAll("\0", "").slice(0, MAX_REASON_LENGTH);
}
