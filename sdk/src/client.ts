// A promise-based client for the broker's three services, on the generated grpc-js stubs.
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import {
  AdminServiceClient,
  CreateSubscriptionRequest,
  DeadLetterFilter,
  type StartPosition,
  Subscription,
  type Topic,
} from "@pgmesh/proto/pgmesh/v1/admin";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import { PublisherServiceClient, type PublishResult } from "@pgmesh/proto/pgmesh/v1/publisher";
import { SubscriberServiceClient } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { v7 as uuidv7 } from "uuid";
import { BatchPublisher, type BatchSettings } from "./batch-publisher.ts";
import { type AnyEventHandler, dispatchByType, dispatchRaw } from "./event-handlers.ts";
import { type EventEnvelope, type EventType, type Publishable, typedEvent } from "./event-type.ts";
import { PublishCoalescer, type PublishCoalescing } from "./publish-coalescer.ts";
import type { Handler } from "./received-event.ts";
import { type RetrySettings, withRetries } from "./retry.ts";
import { type SubscribeOptions, Subscriber } from "./subscriber.ts";

export interface ConnectOptions {
  /** The `source` of events this client publishes when an event names none (default "pgmesh-sdk"). */
  source?: string;
  /** Channel credentials; plaintext when absent (and `tls` is not given). */
  credentials?: ChannelCredentials;
  /**
   * TLS to the broker: `ca` is the PEM of the CA that signed the broker's certificate (the system's
   * roots when absent); `cert` and `key` are this client's certificate for mutual TLS.
   */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** Sent as `authorization: Bearer <token>` on every call, for brokers that require it. */
  token?: string;
  /** Per-call deadline for unary calls, in milliseconds (default 30 s). */
  timeoutMs?: number;
  /**
   * How publishes are retried after UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED
   * (the events keep their ids, so a retry is never stored twice); `false` turns retries off.
   */
  publishRetry?: RetrySettings | false;
  /**
   * grpc-js channel options. By default the channel reconnects after 100 ms and backs off to at most
   * 1 s (grpc-js alone waits 1 s, then up to 120 s), so a restarted broker is found within a second.
   */
  channelOptions?: ChannelOptions;
  /** Hooks around every publish, for metrics and tracing (see PublishHooks). */
  hooks?: PublishHooks;
  /**
   * How concurrent `publish()` calls on one topic share requests: a call goes out at once while
   * fewer than `maxInFlight` (default 4) Publish requests of its topic are in flight from this
   * client; otherwise it waits for one to return and goes out with the others waiting, in one
   * request (up to the broker's 1,000 events and 4 MiB). Each call keeps its own results, its
   * all-or-nothing, its hooks and its own error. Calls with their own `signal` or `timeoutMs`
   * are always sent alone. `false` (or `maxInFlight: 0`) sends every call alone.
   */
  publishCoalescing?: PublishCoalescing | false;
}

/**
 * Called around each publish request (a batch publisher's batches included). For tracing, set the
 * W3C `traceparent` (and `tracestate`) attribute of each event in `beforePublish`; a subscriber's
 * `aroundHandler` reads it back (see the OpenTelemetry section of the SDK's README).
 */
export interface PublishHooks {
  /** Before the first attempt; may change the events (their attributes, say). */
  beforePublish?(topic: string, events: Event[]): void;
  /** After the last attempt: the results, or the error the publish failed with. */
  afterPublish?(outcome: PublishOutcome): void;
}

export interface PublishOutcome {
  topic: string;
  events: readonly Event[];
  results: PublishResult[] | undefined;
  error: unknown;
  /** From the first attempt to the last one's end, retries included. */
  durationMs: number;
}

/** Per call: cancel it with an AbortSignal, or give it its own deadline. */
export interface CallSettings {
  /** Aborting cancels the call (and any retries); it then rejects with code CANCELLED. */
  signal?: AbortSignal;
  /** The call's deadline in ms from now; for a publish, the time its retries may take in all. */
  timeoutMs?: number;
}

const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
  // Ping the broker on a connection with calls open and drop the connection when a ping goes
  // unanswered: a half-open connection otherwise stays READY for ever, and a stream the heartbeat
  // monitor reopens would go out on it again. The broker allows a ping every 5 s.
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  // HTTP/2 flow control: how much the broker may send before this client acknowledges it, for the
  // connection and for each stream. grpc-js leaves both at HTTP/2's 65,535 bytes, so a Deliveries
  // message of 1,000 events (about 350 kB) crossed in six round trips of WINDOW_UPDATE, and the
  // subscriptions sharing a connection shared those 64 kB: in bench (c) the ten streams' windows sat
  // full of deliveries still on the way. The consumer's own window (max outstanding messages and
  // bytes) is what bounds a stream; this only stops HTTP/2 from bounding it lower.
  "grpc-node.flow_control_window": 8 * 1024 * 1024,
};

/** A subscription's delivery policy, in seconds; anything left out keeps its default (or current) value. */
export interface SubscriptionPolicy {
  ackDeadlineSeconds?: number;
  ackedRetentionSeconds?: number;
  maxDeliveryAttempts?: number;
  deadLettering?: boolean;
  retryPolicy?: {
    initialBackoffSeconds?: number;
    maxBackoffSeconds?: number;
    multiplier?: number;
    jitter?: number;
  };
}

const duration = (seconds: number | undefined) => (seconds === undefined ? undefined : { seconds, nanos: 0 });

function policyMessage(policy: SubscriptionPolicy) {
  const retry = policy.retryPolicy;
  return {
    ackDeadline: duration(policy.ackDeadlineSeconds),
    ackedRetention: duration(policy.ackedRetentionSeconds),
    maxDeliveryAttempts: policy.maxDeliveryAttempts,
    deadLettering: policy.deadLettering,
    retryPolicy: retry
      ? {
          initialBackoff: duration(retry.initialBackoffSeconds),
          maxBackoff: duration(retry.maxBackoffSeconds),
          multiplier: retry.multiplier,
          jitter: retry.jitter,
        }
      : undefined,
  };
}

type Callback<Res> = (error: ServiceError | null, response: Res) => void;
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => { cancel(): void };

export class PgmeshClient {
  readonly admin: AdminServiceClient;
  readonly publisher: PublisherServiceClient;
  readonly subscriber: SubscriberServiceClient;
  private readonly timeoutMs: number;
  private readonly source: string;
  private readonly token: string | undefined;
  private readonly publishRetry: RetrySettings | false;
  private readonly hooks: PublishHooks;
  private readonly coalescer: PublishCoalescer | undefined;

  constructor(address: string, options: ConnectOptions = {}) {
    this.source = options.source ?? "pgmesh-sdk";
    this.token = options.token;
    const tls = options.tls;
    const creds =
      options.credentials ??
      (tls
        ? credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null)
        : credentials.createInsecure());
    const channel = { ...DEFAULT_CHANNEL_OPTIONS, ...options.channelOptions };
    this.admin = new AdminServiceClient(address, creds, channel);
    this.publisher = new PublisherServiceClient(address, creds, channel);
    this.subscriber = new SubscriberServiceClient(address, creds, channel);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.publishRetry = options.publishRetry ?? {};
    this.hooks = options.hooks ?? {};
    const coalescing = options.publishCoalescing ?? {};
    this.coalescer =
      coalescing === false || coalescing.maxInFlight === 0
        ? undefined
        : new PublishCoalescer((topic, events) => this.sendPublish(topic, events, {}), coalescing);
  }

  /** `retentionSeconds`: how long the topic keeps events nothing needs any more (default 7 days). */
  async createTopic(
    name: string,
    options: { retentionSeconds?: number } = {},
    settings?: CallSettings,
  ): Promise<Topic> {
    const request = { name, retention: duration(options.retentionSeconds) };
    return required((await this.call(this.admin, this.admin.createTopic, request, settings)).topic);
  }

  async updateTopic(
    name: string,
    changes: { retentionSeconds: number },
    settings?: CallSettings,
  ): Promise<Topic> {
    const request = { name, retention: duration(changes.retentionSeconds) };
    return required((await this.call(this.admin, this.admin.updateTopic, request, settings)).topic);
  }

  async getTopic(name: string, settings?: CallSettings): Promise<Topic> {
    return required((await this.call(this.admin, this.admin.getTopic, { name }, settings)).topic);
  }

  listTopics(pageSize = 0, pageToken = "") {
    return this.call(this.admin, this.admin.listTopics, { pageSize, pageToken });
  }

  /** Binds a topic to message types from a `buf build` FileDescriptorSet; no types unbinds it. */
  async setTopicSchema(topic: string, fileDescriptorSet: Uint8Array, messageTypes: string[]) {
    const schema = { fileDescriptorSet: Buffer.from(fileDescriptorSet), messageTypes, updateTime: undefined };
    return (await this.call(this.admin, this.admin.setTopicSchema, { topic, schema })).schema;
  }

  async getTopicSchema(topic: string) {
    return (await this.call(this.admin, this.admin.getTopicSchema, { topic })).schema;
  }

  async deleteTopic(name: string, settings?: CallSettings): Promise<void> {
    await this.call(this.admin, this.admin.deleteTopic, { name }, settings);
  }

  /** `ordering` and `filter` are fixed at creation; the policy can be changed later. */
  async createSubscription(
    name: string,
    topic: string,
    options: SubscriptionPolicy & { ordering?: boolean; filter?: string; start?: SeekTarget } = {},
    settings?: CallSettings,
  ): Promise<Subscription> {
    const { ordering, filter, start, ...policy } = options;
    const request = CreateSubscriptionRequest.fromPartial({
      name,
      topic,
      ordering,
      filter,
      ...(start === undefined ? {} : { start: startPosition(start) }),
      ...policyMessage(policy),
    });
    return required(
      (await this.call(this.admin, this.admin.createSubscription, request, settings)).subscription,
    );
  }

  /** Changes only the policy fields given. */
  async updateSubscription(name: string, policy: SubscriptionPolicy): Promise<Subscription> {
    const paths = Object.entries({
      ack_deadline: policy.ackDeadlineSeconds,
      max_delivery_attempts: policy.maxDeliveryAttempts,
      dead_lettering: policy.deadLettering,
      retry_policy: policy.retryPolicy,
      acked_retention: policy.ackedRetentionSeconds,
    })
      .filter(([, value]) => value !== undefined)
      .map(([path]) => path);
    const subscription = Subscription.fromPartial({ name, ...policyMessage(policy) });
    return required(
      (await this.call(this.admin, this.admin.updateSubscription, { subscription, updateMask: paths }))
        .subscription,
    );
  }

  subscriptionStats(name: string) {
    return this.call(this.admin, this.admin.getSubscriptionStats, { name });
  }

  listDeadLetters(
    filter: Partial<DeadLetterFilter> & { subscription: string },
    pageSize = 0,
    pageToken = "",
  ) {
    return this.call(this.admin, this.admin.listDeadLetters, {
      filter: DeadLetterFilter.fromPartial(filter),
      pageSize,
      pageToken,
    });
  }

  async redriveDeadLetters(
    subscription: string,
    selection: { ids?: string[]; filter?: Partial<DeadLetterFilter> } = {},
  ) {
    const filter = DeadLetterFilter.fromPartial({ ...selection.filter, subscription });
    return (await this.call(this.admin, this.admin.redriveDeadLetters, { ids: selection.ids ?? [], filter }))
      .redriven;
  }

  /**
   * A page of the topic's stored events: from a position or a time (ascending), or the newest
   * first when `from` is left out. Needs consume on the topic.
   */
  listTopicEvents(topic: string, options: { from?: SeekTarget; pageSize?: number; pageToken?: string } = {}) {
    return this.call(this.admin, this.admin.listTopicEvents, {
      topic,
      start: options.from === undefined ? undefined : startPosition(options.from),
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
    });
  }

  /** Topics the caller may read, with their numbers as of the broker's last gauge refresh. */
  listTopicSummaries(options: { search?: string; pageSize?: number; pageToken?: string } = {}) {
    return this.call(this.admin, this.admin.listTopicSummaries, {
      search: options.search ?? "",
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
    });
  }

  /** Subscriptions the caller may read, with their numbers as of the broker's last gauge refresh. */
  listSubscriptionSummaries(options: { search?: string; pageSize?: number; pageToken?: string } = {}) {
    return this.call(this.admin, this.admin.listSubscriptionSummaries, {
      search: options.search ?? "",
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
    });
  }

  /** The streams open on the subscription at the broker this client talks to. */
  async listConsumers(subscription: string) {
    return (await this.call(this.admin, this.admin.listConsumers, { subscription })).consumers;
  }

  async listParkedKeys(subscription: string) {
    return (await this.call(this.admin, this.admin.listParkedKeys, { subscription })).parkedKeys;
  }

  async releaseParkedKeys(subscription: string, orderingKeys: string[]) {
    return (await this.call(this.admin, this.admin.releaseParkedKeys, { subscription, orderingKeys }))
      .released;
  }

  async purgeDeadLetters(
    subscription: string,
    selection: { ids?: string[]; filter?: Partial<DeadLetterFilter> } = {},
  ) {
    const filter = DeadLetterFilter.fromPartial({ ...selection.filter, subscription });
    return (await this.call(this.admin, this.admin.purgeDeadLetters, { ids: selection.ids ?? [], filter }))
      .purged;
  }

  async getSubscription(name: string, settings?: CallSettings): Promise<Subscription> {
    return required(
      (await this.call(this.admin, this.admin.getSubscription, { name }, settings)).subscription,
    );
  }

  listSubscriptions(topic = "", pageSize = 0, pageToken = "") {
    return this.call(this.admin, this.admin.listSubscriptions, { topic, pageSize, pageToken });
  }

  async deleteSubscription(name: string, settings?: CallSettings): Promise<void> {
    await this.call(this.admin, this.admin.deleteSubscription, { name }, settings);
  }

  /**
   * Moves a subscription to a time, a position, the oldest retained event or now: events before it
   * count as acked, events after it as pending; deliveries leased before the seek answer STALE.
   * Needs `manage` on the subscription. Refused (FAILED_PRECONDITION) before the oldest event the
   * topic retains.
   */
  async seekSubscription(
    name: string,
    to: SeekTarget,
    settings?: CallSettings,
  ): Promise<{ position: number; droppedDeliveries: number }> {
    return this.call(
      this.admin,
      this.admin.seekSubscription,
      { subscription: name, to: startPosition(to) },
      settings,
    );
  }

  /**
   * Publishes wire events on a topic in one batch (all or nothing); an event without a source gets
   * the client's (`ConnectOptions.source`). An event without an id gets a
   * time-ordered one (uuid v7) here, before the first attempt, so that a retry after a timeout or
   * UNAVAILABLE is recognised by the broker as the same event (reported `duplicate`), never stored
   * twice. Retries follow `ConnectOptions.publishRetry`. While the topic has requests in flight,
   * the call may share a request with other calls (see `ConnectOptions.publishCoalescing`).
   */
  async publish(
    topic: string,
    events: Partial<Event>[],
    settings: CallSettings = {},
  ): Promise<PublishResult[]> {
    const full = events.map((e) =>
      Event.fromPartial({ ...e, id: e.id || uuidv7(), source: e.source ?? this.source }),
    );
    this.hooks.beforePublish?.(topic, full);
    const started = Date.now();
    const report = (results: PublishResult[] | undefined, error: unknown) =>
      this.hooks.afterPublish?.({ topic, events: full, results, error, durationMs: Date.now() - started });
    try {
      // A call with its own signal or deadline goes alone: a shared request has neither. So does
      // an empty one, which the broker refuses (in a shared request it would not be).
      const coalescer = this.coalescer;
      const shared =
        coalescer !== undefined &&
        full.length > 0 &&
        settings.signal === undefined &&
        settings.timeoutMs === undefined;
      const results = shared
        ? await coalescer.publish(topic, full)
        : await this.sendPublish(topic, full, settings);
      report(results, undefined);
      return results;
    } catch (error) {
      report(undefined, error);
      throw error;
    }
  }

  private sendPublish(topic: string, full: Event[], settings: CallSettings): Promise<PublishResult[]> {
    const request = { topic, events: full };
    const once = (deadline: number) =>
      this.call(this.publisher, this.publisher.publish, request, settings, deadline);
    const attempts = (deadline: number) =>
      once(Math.min(deadline, Date.now() + this.timeoutMs)).then((response) => response.results);
    if (this.publishRetry === false) return attempts(Date.now() + (settings.timeoutMs ?? this.timeoutMs));
    const retry = {
      ...this.publishRetry,
      totalTimeoutMs: settings.timeoutMs ?? this.publishRetry.totalTimeoutMs,
    };
    return withRetries(attempts, retry, settings.signal);
  }

  /**
   * Publishes typed messages on their event type's topic, in one batch (all or nothing). Each item
   * is `{ message, ...envelope }` (id, subject, attributes, ordering key, ...).
   */
  async publishEvents<T>(
    type: EventType<T>,
    items: readonly Publishable<T>[],
    settings?: CallSettings,
  ): Promise<PublishResult[]> {
    return this.publish(
      type.topic,
      items.map((item) => ({ source: this.source, ...typedEvent(type, item) })),
      settings,
    );
  }

  /**
   * A publisher that batches events published one by one (by count, bytes and delay) and keeps
   * the order of each ordering key; see BatchPublisher.
   */
  batchPublisher(settings?: BatchSettings): BatchPublisher {
    return new BatchPublisher(
      (topic, events) => this.publish(topic, events),
      { source: this.source },
      settings,
    );
  }

  /** Publishes one typed message with an optional envelope; see publishEvents. */
  async publishEvent<T>(
    type: EventType<T>,
    message: T,
    envelope: EventEnvelope = {},
    settings?: CallSettings,
  ): Promise<PublishResult> {
    const [result] = await this.publishEvents(type, [{ ...envelope, message }], settings);
    return required(result);
  }

  /**
   * Subscribes handlers to typed events (see Subscriber for acks, retries and draining): one event
   * type and its handler, or a handler per event type, `[on(TypeA, a), on(TypeB, b)]`, for a topic
   * that carries several. An event of a type without a handler goes to `options.unhandled`, or is
   * dead-lettered and reported to `options.onError`.
   */
  subscribe<T>(
    subscription: string,
    type: EventType<T>,
    handler: Handler<T>,
    options?: SubscribeOptions,
  ): Subscriber;
  subscribe(
    subscription: string,
    handlers: readonly AnyEventHandler[],
    options?: SubscribeOptions,
  ): Subscriber;
  subscribe<T>(
    subscription: string,
    typeOrHandlers: EventType<T> | readonly AnyEventHandler[],
    handlerOrOptions?: Handler<T> | SubscribeOptions,
    maybeOptions?: SubscribeOptions,
  ): Subscriber {
    const [handlers, options] = Array.isArray(typeOrHandlers)
      ? [typeOrHandlers as readonly AnyEventHandler[], handlerOrOptions as SubscribeOptions | undefined]
      : [[{ type: typeOrHandlers as EventType<T>, handler: handlerOrOptions as Handler<T> }], maybeOptions];
    const dispatch = dispatchByType(handlers, options?.unhandled, (error) => options?.onError?.(error));
    return new Subscriber(this.subscriber, subscription, dispatch, options, () => this.metadata());
  }

  /** Subscribes a handler to any events of a subscription; `data` is the payload's bytes. */
  subscribeRaw(subscription: string, handler: Handler<Uint8Array>, options?: SubscribeOptions): Subscriber {
    return new Subscriber(this.subscriber, subscription, dispatchRaw(handler), options, () =>
      this.metadata(),
    );
  }

  /**
   * Creates a principal: `grants` like "publish:orders.*", "consume:billing", "read:*", "manage:orders.*"
   * or "admin"; `sources` are the event sources it may publish as (empty: its own name only; `["*"]`
   * for a relay or a gateway that publishes on behalf of others).
   */
  async createPrincipal(name: string, grants: string[], sources: string[] = []) {
    const principal = { name, grants, sources, createTime: undefined };
    return required((await this.call(this.admin, this.admin.createPrincipal, { principal })).principal);
  }

  /**
   * Replaces a principal's grants and sources (empty: its own name only). Its tokens stay valid;
   * its open streams that the new grants no longer allow end with PERMISSION_DENIED.
   */
  async updatePrincipal(name: string, grants: string[], sources: string[] = []) {
    const principal = { name, grants, sources, createTime: undefined };
    return required((await this.call(this.admin, this.admin.updatePrincipal, { principal })).principal);
  }

  async listPrincipals() {
    return (await this.call(this.admin, this.admin.listPrincipals, {})).principals;
  }

  /** Deletes the principal and its tokens. */
  async deletePrincipal(name: string): Promise<void> {
    await this.call(this.admin, this.admin.deletePrincipal, { name });
  }

  /** A new token for the principal: `token` is shown only here. */
  async createToken(principal: string, options: { ttlSeconds?: number; description?: string } = {}) {
    const response = await this.call(this.admin, this.admin.createToken, {
      principal,
      ttl: duration(options.ttlSeconds),
      description: options.description ?? "",
    });
    return { token: response.token, info: required(response.info) };
  }

  async listTokens(principal = "") {
    return (await this.call(this.admin, this.admin.listTokens, { principal })).tokens;
  }

  async revokeToken(id: string) {
    return required((await this.call(this.admin, this.admin.revokeToken, { id })).token);
  }

  /** Admin actions, newest first. */
  listAuditLog(options: { principal?: string; pageSize?: number; pageToken?: string } = {}) {
    return this.call(this.admin, this.admin.listAuditLog, {
      principal: options.principal ?? "",
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
    });
  }

  /** Closes the channels; publishes still waiting to share a request are sent first. */
  close(): void {
    this.coalescer?.close();
    this.admin.close();
    this.publisher.close();
    this.subscriber.close();
  }

  /** The metadata every call carries (the bearer token, when set). */
  metadata(): Metadata {
    const metadata = new Metadata();
    if (this.token) metadata.set("authorization", `Bearer ${this.token}`);
    return metadata;
  }

  private call<Req, Res>(
    target: object,
    method: UnaryMethod<Req, Res>,
    request: Req,
    settings: CallSettings = {},
    deadline = Date.now() + (settings.timeoutMs ?? this.timeoutMs),
  ): Promise<Res> {
    const { signal } = settings;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(cancelled());
        return;
      }
      const onAbort = () => call.cancel();
      const call = method.call(target, request, this.metadata(), { deadline }, (error, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(response);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** What a call aborted before it started rejects with: the same code grpc-js gives a cancelled call. */
function cancelled(): ServiceError {
  return Object.assign(new Error(`${status.CANCELLED} CANCELLED: aborted by the caller's signal`), {
    code: status.CANCELLED,
    details: "aborted by the caller's signal",
    metadata: new Metadata(),
  });
}

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("the broker sent an empty response");
  return value;
}

/** Where a subscription starts or a seek goes: a time, a position, or "earliest" / "now". */
export type SeekTarget = Date | { position: number } | "earliest" | "now";

function startPosition(to: SeekTarget): StartPosition {
  if (to === "now") return { at: { $case: "now", value: {} } };
  if (to === "earliest") return { at: { $case: "earliest", value: {} } };
  if (to instanceof Date) return { at: { $case: "time", value: to } };
  return { at: { $case: "position", value: to.position } };
}
