// Stream-subscribes with a handler: acks when the handler resolves, nacks when it throws (or
// rejects / retries after a delay when it throws RejectEvent / RetryEventAfter), runs at most
// `concurrency` handlers at once, extends the lease of a handler still running at half the ack
// deadline, watches the broker's heartbeats, reconnects with jittered backoff when the stream
// breaks or goes silent, and drains on close().
import { connectivityState, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { AckBatcher } from "./ack-batcher.ts";
import type { Event } from "./gen/pgmesh/v1/event.ts";
import {
  type AckResult,
  AckStatus,
  type Delivery,
  type SubscribeRequest,
  type SubscribeResponse,
} from "./gen/pgmesh/v1/subscriber.ts";
import { HeartbeatMonitor } from "./heartbeat-monitor.ts";
import { RejectEvent, RetryEventAfter } from "./outcomes.ts";
import type { Dispatch, Handler, ReceivedEvent } from "./received-event.ts";
import { checkTransition, type LifecycleName } from "./subscriber-state.ts";

export type { Handler, ReceivedEvent } from "./received-event.ts";

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
  /**
   * Heartbeats the broker's stream may miss before the subscriber takes the connection for dead,
   * breaks the stream and reconnects (default 3; the broker announces its interval when the
   * stream opens, 15 s by default). A half-open connection (a peer or a middlebox gone without a
   * word) never errors by itself; this is how it is noticed. At least 2 (a beat may arrive just
   * after a check); 0 turns the watch off.
   */
  maxMissedHeartbeats?: number;
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
const DEFAULT_MAX_MISSED_HEARTBEATS = 3;

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

/** The stream the subscriber holds: a gRPC duplex stream (or, in unit tests, a fake one). */
export interface SubscribeCall {
  write(message: SubscribeRequest): unknown;
  end(): void;
  cancel(): void;
  on(event: "data", listener: (message: SubscribeResponse) => void): unknown;
  on(event: "error", listener: (error: ServiceError) => void): unknown;
  on(event: "end", listener: () => void): unknown;
}

/** What the subscriber needs of the generated SubscriberServiceClient. */
export interface SubscribeClient {
  subscribe(metadata: Metadata): SubscribeCall;
  getChannel(): { getConnectivityState(tryToConnect: boolean): connectivityState };
}

/** One stream to the broker and what belongs to it alone: leases, acks and settles die with it. */
interface Session {
  readonly call: SubscribeCall;
  readonly acks: AckBatcher;
  /** Nacks and rejects sent and not yet answered, so that a refused one can fall back to a nack. */
  readonly unanswered: Map<string, "nack" | "reject" | "fallback nack">;
  heartbeats: HeartbeatMonitor | undefined;
  /** The lease extenders of its running handlers: a lost stream's leases are not ours to extend. */
  readonly extenders: Set<NodeJS.Timeout>;
  /** Resolves when the subscriber lets go of the stream (it ended, broke or was cut). */
  readonly ended: Promise<void>;
  markEnded(): void;
}

/**
 * The subscriber's lifecycle (the moves are checked, see subscriber-state.ts):
 * - `connecting`: a stream started with waitForReady and `open` sent, not answered yet. It holds
 *   nothing, so close() cuts it instead of draining it, and every reconnect interval `report`
 *   tells onError that it still waits;
 * - `open`: the broker answered `opened`; deliveries flow and its heartbeats are watched;
 * - `backoff`: the stream broke; `timer` starts the next one;
 * - `draining`: close() was called; running handlers finish and settle on `session` (if the stream
 *   is still there), then it ends;
 * - `closed`: for good, after close() or an error reconnecting cannot fix.
 */
type State =
  | { name: "connecting"; session: Session; report: NodeJS.Timeout }
  | { name: "open"; session: Session }
  | { name: "backoff"; timer: NodeJS.Timeout }
  | { name: "draining"; session: Session | undefined }
  | { name: "closed" };

function sessionOf(state: State): Session | undefined {
  return "session" in state ? state.session : undefined;
}

export class Subscriber {
  private state: State;
  private running = 0;
  /** Deliveries of the current stream waiting for a free handler. */
  private readonly backlog: Delivery[] = [];
  private readonly idle: (() => void)[] = [];
  private ackDeadlineMs = 60_000;
  private reconnectDelay: number;
  private readonly concurrency: number;
  private closing: Promise<void> | undefined;
  /** Resolves when the subscriber stops for good: after close(), or on an error it cannot retry. */
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (error: unknown) => void;
  /** Resolves once the first stream is open; rejects when the subscription cannot be opened. */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: unknown) => void;

  constructor(
    private readonly client: SubscribeClient,
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
    this.state = this.startStream();
  }

  /** Where the subscriber is in its life: connecting, open, backoff, draining or closed. */
  get lifecycle(): LifecycleName {
    return this.state.name;
  }

  /**
   * Stops taking deliveries, lets running handlers finish and settle (for up to `timeoutMs`), then
   * ends the stream. Leaves no timer behind: once it resolves and the client is closed, the process
   * can exit at once. Deliveries not settled by then go back to the broker.
   */
  close(timeoutMs = this.options.closeTimeoutMs ?? 10_000): Promise<void> {
    this.closing ??= this.drain(timeoutMs);
    return this.closing;
  }

  private async drain(timeoutMs: number): Promise<void> {
    const from = this.state;
    if (from.name === "closed") return this.done.catch(() => {});
    this.rejectReady(new Error("the subscriber was closed before its stream opened"));
    // A stream still waiting for the broker holds nothing to drain: it is cut.
    const session = from.name === "open" ? from.session : undefined;
    this.enter({ name: "draining", session });
    if (from.name === "connecting") from.session.call.cancel();
    const deadline = Date.now() + timeoutMs;
    try {
      session?.call.write({ request: { $case: "flow", value: { maxOutstandingMessages: 0 } } });
      // Deliveries not yet started go back to the broker when the stream ends.
      this.backlog.length = 0;
      await within(deadline, this.handlersIdle());
      const left = sessionOf(this.state);
      if (left) {
        left.acks.flush();
        left.call.end();
        await within(deadline, left.ended);
      }
    } finally {
      // A stream the broker has not ended by now is cut.
      const left = sessionOf(this.state);
      this.enter({ name: "closed" });
      left?.call.cancel();
      this.resolveDone();
    }
  }

  private async handlersIdle(): Promise<void> {
    while (this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Moves to `next` (throwing on a move the lifecycle does not allow) and lets go of what `from` held. */
  private enter(next: State): void {
    const from = this.state;
    checkTransition(from.name, next.name);
    this.state = next;
    if (from.name === "connecting") clearInterval(from.report);
    if (from.name === "backoff") clearTimeout(from.timer);
    const session = sessionOf(from);
    if (!session) return;
    if (next.name !== "open") {
      session.heartbeats?.stop();
      session.heartbeats = undefined;
    }
    if (sessionOf(next) !== session) {
      // What this stream held is released by the broker; handlers still running settle into the void.
      session.acks.discard();
      session.unanswered.clear();
      for (const extender of session.extenders) clearInterval(extender);
      session.extenders.clear();
      this.backlog.length = 0;
      session.markEnded();
    }
  }

  /** Starts a stream; the `connecting` state to enter, or `closed` when the client is shut down. */
  private startStream(): State {
    let call: SubscribeCall;
    // Wait for the channel instead of failing at once while it is down: the stream then opens the
    // moment the channel reconnects (its backoff is capped at 1 s), rather than at this
    // subscriber's next attempt after that, which could add a second backoff on top.
    const metadata = this.metadata();
    metadata.setOptions({ waitForReady: true });
    try {
      call = this.client.subscribe(metadata);
    } catch (error) {
      // The client was closed under the subscriber ("Channel has been shut down"): nothing to retry.
      this.fail(error);
      return { name: "closed" };
    }
    let markEnded!: () => void;
    const ended = new Promise<void>((resolve) => {
      markEnded = resolve;
    });
    const session: Session = {
      call,
      acks: new AckBatcher((ackIds) => this.send(session, { $case: "ack", value: { ackIds } })),
      unanswered: new Map(),
      heartbeats: undefined,
      extenders: new Set(),
      ended,
      markEnded,
    };
    call.on("data", (message) => this.onMessage(session, message));
    call.on("error", (error) => this.onBroken(session, error));
    call.on("end", () => this.onBroken(session, undefined));
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
    return { name: "connecting", session, report: this.reportWhileWaiting(session) };
  }

  private fail(error: unknown): void {
    this.rejectReady(error);
    this.rejectDone(error);
  }

  /** Writes on `session`'s stream while the subscriber still holds it; a settle for a lost stream is moot. */
  private send(session: Session, request: SubscribeRequest["request"]): void {
    if (sessionOf(this.state) === session) session.call.write({ request });
  }

  private onMessage(session: Session, message: SubscribeResponse): void {
    if (sessionOf(this.state) !== session) return;
    session.heartbeats?.beat();
    const response = message.response;
    if (response?.$case === "opened") {
      this.onOpened(session, response.value.ackDeadline?.seconds, response.value.heartbeatInterval);
    } else if (response?.$case === "deliveries") {
      // While draining, deliveries are not started: they go back when the stream ends.
      if (this.state.name !== "open") return;
      this.backlog.push(...response.value.deliveries);
      this.pump();
    } else if (response?.$case === "ackResults") {
      for (const result of response.value.results) this.onResult(session, result);
    }
  }

  private onOpened(
    session: Session,
    ackDeadlineSeconds: number | undefined,
    heartbeatInterval: { seconds: number; nanos: number } | undefined,
  ): void {
    if (this.state.name !== "connecting") return;
    this.enter({ name: "open", session });
    this.ackDeadlineMs = (ackDeadlineSeconds ?? 60) * 1000;
    this.reconnectDelay = this.options.reconnectInitialMs ?? 100;
    const intervalMs = heartbeatInterval
      ? heartbeatInterval.seconds * 1000 + heartbeatInterval.nanos / 1_000_000
      : 0;
    const maxMissed = this.options.maxMissedHeartbeats ?? DEFAULT_MAX_MISSED_HEARTBEATS;
    if (intervalMs > 0 && maxMissed > 0) {
      // A beat can come up to one check late, so one missed check alone proves nothing.
      const misses = Math.max(2, Math.floor(maxMissed));
      session.heartbeats = new HeartbeatMonitor(intervalMs, misses, (missed) =>
        this.onSilent(session, intervalMs * missed),
      );
    }
    this.resolveReady();
  }

  /** The broker has sent nothing for several heartbeat intervals: the connection is taken for dead. */
  private onSilent(session: Session, silentMs: number): void {
    const details =
      `no message from the broker for ${(silentMs / 1000).toFixed(1)} s, though it sends a ` +
      "heartbeat on an idle stream: the connection is taken for dead and the stream reopened";
    const error = Object.assign(new Error(`${status.UNAVAILABLE} UNAVAILABLE: ${details}`), {
      code: status.UNAVAILABLE,
      details,
      metadata: new Metadata(),
    });
    this.onBroken(session, error);
    // The stream's own end (CANCELLED) is ignored: the subscriber let go of it above.
    session.call.cancel();
  }

  /**
   * A refused settle changed nothing: the delivery is still ours. A refused reject or delayed nack
   * falls back to a plain nack (which the broker always takes), so one event never holds a lease
   * until it lapses; every refusal is reported through onError.
   */
  private onResult(session: Session, result: AckResult): void {
    const sent = session.unanswered.get(result.ackId);
    session.unanswered.delete(result.ackId);
    const refused =
      result.status === AckStatus.ACK_STATUS_INVALID_ARGUMENT ||
      result.status === AckStatus.ACK_STATUS_FAILED_PRECONDITION;
    if (!refused) return;
    const fallback = sent === "nack" || sent === "reject";
    if (fallback) {
      session.unanswered.set(result.ackId, "fallback nack");
      this.send(session, {
        $case: "nack",
        value: { ackIds: [result.ackId], reason: settleReason(result.message), delay: undefined },
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

  private onBroken(session: Session, error: ServiceError | undefined): void {
    if (sessionOf(this.state) !== session) return;
    if (this.state.name === "draining") {
      this.enter({ name: "draining", session: undefined });
      return;
    }
    if (error && FATAL.has(error.code)) {
      this.enter({ name: "closed" });
      this.fail(error);
      return;
    }
    if (error) this.options.onError?.(error);
    const cap = this.options.reconnectMaxMs ?? 1000;
    const delay = Math.random() * this.reconnectDelay;
    this.reconnectDelay = Math.min(cap, this.reconnectDelay * 2);
    const timer = setTimeout(() => this.enter(this.startStream()), delay);
    this.enter({ name: "backoff", timer });
  }

  /**
   * A stream waiting for the broker (waitForReady) fails nothing, so without this a wrong address
   * or a broker that is down would be silent: every reconnect interval it still waits, onError
   * hears an UNAVAILABLE naming how long and the connection's state.
   */
  private reportWhileWaiting(session: Session): NodeJS.Timeout {
    const since = Date.now();
    const report = setInterval(() => {
      const state = connectivityState[this.client.getChannel().getConnectivityState(false)];
      const waited = ((Date.now() - since) / 1000).toFixed(1);
      const details = `waited ${waited} s for the broker (connection ${state})`;
      const error = Object.assign(new Error(`${status.UNAVAILABLE} UNAVAILABLE: ${details}`), {
        code: status.UNAVAILABLE,
        details,
      });
      if (sessionOf(this.state) === session) this.options.onError?.(error);
    }, this.options.reconnectMaxMs ?? 1000);
    report.unref();
    return report;
  }

  private pump(): void {
    const state = this.state;
    if (state.name !== "open") return;
    while (this.running < this.concurrency && this.backlog.length > 0) {
      const delivery = this.backlog.shift() as Delivery;
      this.running++;
      void this.handle(state.session, delivery).finally(() => {
        this.running--;
        if (this.running === 0) for (const wake of this.idle.splice(0)) wake();
        this.pump();
      });
    }
  }

  private async handle(session: Session, delivery: Delivery): Promise<void> {
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
      this.send(session, { $case: "extend", value: { ackIds, duration: { seconds, nanos: 0 } } });
    }, this.ackDeadlineMs / 2);
    session.extenders.add(extender);
    try {
      const received = this.toReceived(delivery);
      const handle = async () => this.dispatch(received);
      const around = this.options.aroundHandler;
      await withTimeout(around ? around(received, handle) : handle(), this.options.handlerTimeoutMs);
      session.acks.add(delivery.ackId);
    } catch (error) {
      if (error instanceof RejectEvent) {
        session.unanswered.set(delivery.ackId, "reject");
        this.send(session, { $case: "reject", value: { ackIds, reason: settleReason(error.reason) } });
      } else if (error instanceof RetryEventAfter) {
        const seconds = Number.isFinite(error.seconds) ? Math.round(error.seconds) : MAX_NACK_DELAY_SECONDS;
        const delay = { seconds: Math.min(MAX_NACK_DELAY_SECONDS, Math.max(0, seconds)), nanos: 0 };
        session.unanswered.set(delivery.ackId, "nack");
        this.send(session, { $case: "nack", value: { ackIds, reason: settleReason(error.reason), delay } });
      } else {
        const reason = error instanceof Error ? error.message : String(error);
        session.unanswered.set(delivery.ackId, "nack");
        this.send(session, {
          $case: "nack",
          value: { ackIds, reason: settleReason(reason), delay: undefined },
        });
      }
    } finally {
      clearInterval(extender);
      session.extenders.delete(extender);
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

/** Resolves when `work` does or `deadline` (a Date.now() time) passes, whichever comes first. */
async function within(deadline: number, work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeLeft = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
  });
  try {
    await Promise.race([work, timeLeft]);
  } finally {
    clearTimeout(timer);
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
