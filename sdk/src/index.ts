// @pgmesh/sdk: the public surface. The wire types its methods take and return are re-exported here;
// the rest of the generated wire code is in @pgmesh/proto.
import { type ConnectOptions, PgmeshClient } from "./client.ts";

export type {
  AuditRecord,
  DeadLetter,
  DeadLetterFilter,
  ParkedKey,
  Principal,
  RetryPolicy,
  Subscription,
  TokenInfo,
  Topic,
  TopicSchema,
} from "@pgmesh/proto/pgmesh/v1/admin";
export { DeadLetterReason } from "@pgmesh/proto/pgmesh/v1/admin";
export type { Event } from "@pgmesh/proto/pgmesh/v1/event";
export type { PublishResult } from "@pgmesh/proto/pgmesh/v1/publisher";
export { BatchPublisher, type BatchSettings, PublishPausedError, type SendBatch } from "./batch-publisher.ts";
export {
  type CallSettings,
  type ConnectOptions,
  PgmeshClient,
  type PublishHooks,
  type PublishOutcome,
  type SeekTarget,
  type SubscriptionPolicy,
} from "./client.ts";
export { type AnyEventHandler, type EventHandler, on } from "./event-handlers.ts";
export {
  defineEvent,
  type EventEnvelope,
  type EventType,
  type MessageCodec,
  type Publishable,
  TYPE_URL_PREFIX,
} from "./event-type.ts";
export { outboxPublish, outboxPublishEvents, type SqlTransaction } from "./outbox.ts";
export { RejectEvent, RetryEventAfter, reject, retryAfter } from "./outcomes.ts";
export type { PublishCoalescing } from "./publish-coalescer.ts";
export { isRetryable, type RetrySettings } from "./retry.ts";
export {
  type Handler,
  type ReceivedEvent,
  SettleRefused,
  type SubscribeOptions,
  type Subscriber,
} from "./subscriber.ts";

/** Connects to a pgmesh broker (host:port). */
export function connect(address: string, options?: ConnectOptions): PgmeshClient {
  return new PgmeshClient(address, options);
}
