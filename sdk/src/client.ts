// A promise-based client for the broker's three services, on the generated grpc-js stubs.
import {
  type CallOptions,
  type ChannelCredentials,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { type EventEnvelope, type EventType, type Publishable, typedEvent } from "./event-type.ts";
import {
  AdminServiceClient,
  CreateSubscriptionRequest,
  DeadLetterFilter,
  Subscription,
  type Topic,
} from "./gen/pgmesh/v1/admin.ts";
import { Event } from "./gen/pgmesh/v1/event.ts";
import { PublisherServiceClient, type PublishResult } from "./gen/pgmesh/v1/publisher.ts";
import { SubscriberServiceClient } from "./gen/pgmesh/v1/subscriber.ts";
import { type Handler, type SubscribeOptions, Subscriber } from "./subscriber.ts";

export interface ConnectOptions {
  /** The `source` of events this client publishes when an event names none (default "pgmesh-sdk"). */
  source?: string;
  /** Channel credentials; plaintext when absent. */
  credentials?: ChannelCredentials;
  /** Sent as `authorization: Bearer <token>` on every call, for brokers that require it. */
  token?: string;
  /** Per-call deadline for unary calls, in milliseconds (default 30 s). */
  timeoutMs?: number;
}

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
          multiplier: retry.multiplier ?? 0,
          jitter: retry.jitter ?? 0,
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
) => unknown;

export class PgmeshClient {
  readonly admin: AdminServiceClient;
  readonly publisher: PublisherServiceClient;
  readonly subscriber: SubscriberServiceClient;
  private readonly timeoutMs: number;
  private readonly source: string;
  private readonly token: string | undefined;

  constructor(address: string, options: ConnectOptions = {}) {
    this.source = options.source ?? "pgmesh-sdk";
    this.token = options.token;
    const creds = options.credentials ?? credentials.createInsecure();
    this.admin = new AdminServiceClient(address, creds);
    this.publisher = new PublisherServiceClient(address, creds);
    this.subscriber = new SubscriberServiceClient(address, creds);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** `retentionSeconds`: how long the topic keeps events nothing needs any more (default 7 days). */
  async createTopic(name: string, options: { retentionSeconds?: number } = {}): Promise<Topic> {
    const request = { name, retention: duration(options.retentionSeconds) };
    return required((await this.call(this.admin, this.admin.createTopic, request)).topic);
  }

  async updateTopic(name: string, changes: { retentionSeconds: number }): Promise<Topic> {
    const request = { name, retention: duration(changes.retentionSeconds) };
    return required((await this.call(this.admin, this.admin.updateTopic, request)).topic);
  }

  async getTopic(name: string): Promise<Topic> {
    return required((await this.call(this.admin, this.admin.getTopic, { name })).topic);
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

  async deleteTopic(name: string): Promise<void> {
    await this.call(this.admin, this.admin.deleteTopic, { name });
  }

  /** `ordering` and `filter` are fixed at creation; the policy can be changed later. */
  async createSubscription(
    name: string,
    topic: string,
    options: SubscriptionPolicy & { ordering?: boolean; filter?: string } = {},
  ): Promise<Subscription> {
    const { ordering, filter, ...policy } = options;
    const request = CreateSubscriptionRequest.fromPartial({
      name,
      topic,
      ordering,
      filter,
      ...policyMessage(policy),
    });
    return required((await this.call(this.admin, this.admin.createSubscription, request)).subscription);
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

  async getSubscription(name: string): Promise<Subscription> {
    return required((await this.call(this.admin, this.admin.getSubscription, { name })).subscription);
  }

  listSubscriptions(topic = "", pageSize = 0, pageToken = "") {
    return this.call(this.admin, this.admin.listSubscriptions, { topic, pageSize, pageToken });
  }

  async deleteSubscription(name: string): Promise<void> {
    await this.call(this.admin, this.admin.deleteSubscription, { name });
  }

  async publish(topic: string, events: Partial<Event>[]): Promise<PublishResult[]> {
    const full = events.map((e) => Event.fromPartial(e));
    return (await this.call(this.publisher, this.publisher.publish, { topic, events: full })).results;
  }

  /**
   * Publishes typed messages on their event type's topic, in one batch (all or nothing). Each item
   * is a message, or a message with envelope fields (id, subject, attributes, ordering key, ...).
   */
  async publishEvents<T>(type: EventType<T>, items: (T | Publishable<T>)[]): Promise<PublishResult[]> {
    return this.publish(
      type.topic,
      items.map((item) => ({ source: this.source, ...typedEvent(type, item) })),
    );
  }

  /** Publishes one typed message; see publishEvents. */
  async publishEvent<T>(
    type: EventType<T>,
    message: T,
    envelope: EventEnvelope = {},
  ): Promise<PublishResult> {
    const [result] = await this.publishEvents(type, [{ message, ...envelope }]);
    return required(result);
  }

  /** Subscribes a handler to typed events (see Subscriber for acks, retries and draining). */
  subscribe<T>(
    subscription: string,
    type: EventType<T>,
    handler: Handler<T>,
    options?: SubscribeOptions,
  ): Subscriber<T> {
    return new Subscriber(this.subscriber, subscription, type, handler, options, () => this.metadata());
  }

  /** Subscribes a handler to any events of a subscription; `data` is the payload's bytes. */
  subscribeRaw(
    subscription: string,
    handler: Handler<Uint8Array>,
    options?: SubscribeOptions,
  ): Subscriber<Uint8Array> {
    return new Subscriber<Uint8Array>(this.subscriber, subscription, undefined, handler, options, () =>
      this.metadata(),
    );
  }

  close(): void {
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

  private call<Req, Res>(target: object, method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(
        target,
        request,
        this.metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (error, response) => (error ? reject(error) : resolve(response)),
      );
    });
  }
}

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("the broker sent an empty response");
  return value;
}
