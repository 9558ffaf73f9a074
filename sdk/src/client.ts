// A promise-based client for the broker's three services, on the generated grpc-js stubs.
import {
  type CallOptions,
  type ChannelCredentials,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { AdminServiceClient, type Subscription, type Topic } from "./gen/pgmesh/v1/admin.ts";
import type { Event } from "./gen/pgmesh/v1/event.ts";
import { PublisherServiceClient, type PublishResult } from "./gen/pgmesh/v1/publisher.ts";
import { SubscriberServiceClient } from "./gen/pgmesh/v1/subscriber.ts";

export interface ConnectOptions {
  /** Channel credentials; plaintext when absent. */
  credentials?: ChannelCredentials;
  /** Per-call deadline for unary calls, in milliseconds (default 30 s). */
  timeoutMs?: number;
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

  constructor(address: string, options: ConnectOptions = {}) {
    const creds = options.credentials ?? credentials.createInsecure();
    this.admin = new AdminServiceClient(address, creds);
    this.publisher = new PublisherServiceClient(address, creds);
    this.subscriber = new SubscriberServiceClient(address, creds);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async createTopic(name: string): Promise<Topic> {
    return required((await this.call(this.admin, this.admin.createTopic, { name })).topic);
  }

  async getTopic(name: string): Promise<Topic> {
    return required((await this.call(this.admin, this.admin.getTopic, { name })).topic);
  }

  listTopics(pageSize = 0, pageToken = "") {
    return this.call(this.admin, this.admin.listTopics, { pageSize, pageToken });
  }

  async deleteTopic(name: string): Promise<void> {
    await this.call(this.admin, this.admin.deleteTopic, { name });
  }

  async createSubscription(
    name: string,
    topic: string,
    options: { ackDeadlineSeconds?: number } = {},
  ): Promise<Subscription> {
    const ackDeadline =
      options.ackDeadlineSeconds === undefined
        ? undefined
        : { seconds: options.ackDeadlineSeconds, nanos: 0 };
    return required(
      (await this.call(this.admin, this.admin.createSubscription, { name, topic, ackDeadline })).subscription,
    );
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
    const full = events.map((e) => ({
      id: "",
      source: "",
      type: "",
      subject: "",
      time: undefined,
      attributes: {},
      orderingKey: "",
      data: undefined,
      publishTime: undefined,
      topic: "",
      ...e,
    }));
    return (await this.call(this.publisher, this.publisher.publish, { topic, events: full })).results;
  }

  close(): void {
    this.admin.close();
    this.publisher.close();
    this.subscriber.close();
  }

  private call<Req, Res>(target: object, method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(
        target,
        request,
        new Metadata(),
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
