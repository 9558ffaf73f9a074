// Conversions between the generated wire types and the delivery layer's records.
import { Any } from "@pgmesh/proto/google/protobuf/any";
import type { Duration } from "@pgmesh/proto/google/protobuf/duration";
import {
  type DeadLetterFilter,
  type DeadLetter as DeadLetterMessage,
  DeadLetterReason as DeadLetterReasonMessage,
  type RetryPolicy as RetryPolicyMessage,
  type StartPosition as StartPositionMessage,
  type Subscription as SubscriptionMessage,
  type Topic as TopicMessage,
  type TopicSchema as TopicSchemaMessage,
} from "@pgmesh/proto/pgmesh/v1/admin";
import { Event } from "@pgmesh/proto/pgmesh/v1/event";
import type { PolicyInput } from "../delivery/admin.ts";
import { invalidArgument } from "../delivery/errors.ts";
import type {
  DeadLetter,
  DeadLetterReason,
  DeadLetterSelection,
  EventEnvelope,
  StartPosition,
  StoredEvent,
  Subscription,
  Topic,
  TopicSchema,
} from "../delivery/model.ts";

export function envelopeFromWire(event: Event): EventEnvelope {
  return {
    id: event.id,
    source: event.source,
    type: event.type,
    subject: event.subject,
    time: event.time,
    attributes: event.attributes,
    orderingKey: event.orderingKey,
    dataTypeUrl: event.data?.typeUrl ?? "",
    data: event.data?.value ?? new Uint8Array(),
    deliverAfter: event.deliverAfter,
  };
}

export function eventToWire(event: StoredEvent): Event {
  return Event.fromPartial({
    id: event.id,
    source: event.source,
    type: event.type,
    subject: event.subject,
    time: event.time,
    attributes: event.attributes,
    orderingKey: event.orderingKey,
    data:
      event.dataTypeUrl || event.data.byteLength > 0
        ? Any.fromPartial({ typeUrl: event.dataTypeUrl, value: Buffer.from(event.data) })
        : undefined,
    publishTime: event.publishedAt,
    topic: event.topic,
    deliverAfter: event.deliverAfter,
  });
}

export const topicToWire = (topic: Topic): TopicMessage => ({
  name: topic.name,
  createTime: topic.createdAt,
  retention: seconds(topic.retentionSeconds),
});

export const schemaToWire = (schema: TopicSchema): TopicSchemaMessage => ({
  fileDescriptorSet: Buffer.from(schema.fileDescriptorSet),
  messageTypes: schema.messageTypes,
  updateTime: schema.updatedAt,
});

export const seconds = (value: number): Duration => ({
  seconds: Math.floor(value),
  nanos: Math.round((value % 1) * 1e9),
});

export const subscriptionToWire = (sub: Subscription): SubscriptionMessage => ({
  name: sub.name,
  topic: sub.topic,
  ackDeadline: seconds(sub.ackDeadlineSeconds),
  createTime: sub.createdAt,
  ordering: sub.ordering,
  filter: sub.filter,
  ackedRetention: seconds(sub.ackedRetentionSeconds),
  maxDeliveryAttempts: sub.maxDeliveryAttempts,
  deadLettering: sub.deadLettering,
  retryPolicy: {
    initialBackoff: seconds(sub.retryPolicy.initialBackoffSeconds),
    maxBackoff: seconds(sub.retryPolicy.maxBackoffSeconds),
    multiplier: sub.retryPolicy.multiplier,
    jitter: sub.retryPolicy.jitter,
  },
});

/** A Duration as whole seconds; fractions are refused rather than silently rounded. */
export function wholeSeconds(field: string, duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  if (duration.nanos !== 0) throw invalidArgument(`${field} must be a whole number of seconds`);
  return Number(duration.seconds);
}

/** The policy fields a create or update request sets; unset ones are undefined (0 is a value). */
export function policyFromWire(message: {
  ackDeadline?: Duration;
  ackedRetention?: Duration;
  maxDeliveryAttempts?: number;
  deadLettering?: boolean;
  retryPolicy?: RetryPolicyMessage;
}): PolicyInput {
  const retry = message.retryPolicy;
  return {
    ackDeadlineSeconds: wholeSeconds("ack_deadline", message.ackDeadline),
    ackedRetentionSeconds: wholeSeconds("acked_retention", message.ackedRetention),
    maxDeliveryAttempts: message.maxDeliveryAttempts,
    deadLettering: message.deadLettering,
    retryPolicy: retry
      ? {
          initialBackoffSeconds: wholeSeconds("retry_policy.initial_backoff", retry.initialBackoff),
          maxBackoffSeconds: wholeSeconds("retry_policy.max_backoff", retry.maxBackoff),
          multiplier: retry.multiplier,
          jitter: retry.jitter,
        }
      : undefined,
  };
}

const REASONS: Record<DeadLetterReason, DeadLetterReasonMessage> = {
  max_attempts: DeadLetterReasonMessage.DEAD_LETTER_REASON_MAX_ATTEMPTS,
  rejected: DeadLetterReasonMessage.DEAD_LETTER_REASON_REJECTED,
};

export const deadLetterToWire = (dl: DeadLetter): DeadLetterMessage => ({
  id: dl.id,
  subscription: dl.subscription,
  event: eventToWire(dl.event),
  attempts: dl.attempts,
  reason: REASONS[dl.reason],
  lastError: dl.lastError,
  firstFailureTime: dl.firstFailedAt,
  deadLetterTime: dl.deadLetteredAt,
});

export function selectionFromWire(ids: string[], filter: DeadLetterFilter | undefined): DeadLetterSelection {
  const wanted = filter?.reason ?? DeadLetterReasonMessage.DEAD_LETTER_REASON_UNSPECIFIED;
  const reason = (Object.keys(REASONS) as DeadLetterReason[]).find((r) => REASONS[r] === wanted);
  if (wanted !== DeadLetterReasonMessage.DEAD_LETTER_REASON_UNSPECIFIED && !reason) {
    throw invalidArgument(`filter.reason ${wanted} is not a known reason`);
  }
  return {
    subscription: filter?.subscription ?? "",
    ids: ids.length > 0 ? ids : undefined,
    reason,
    after: filter?.after,
    before: filter?.before,
    eventType: filter?.eventType || undefined,
  };
}

/** A start position or seek target from the wire; undefined when none is given. */
export function startFromWire(start: StartPositionMessage | undefined): StartPosition | undefined {
  const at = start?.at;
  if (!at) return undefined;
  switch (at.$case) {
    case "now":
      return { kind: "now" };
    case "earliest":
      return { kind: "earliest" };
    case "time":
      return { kind: "time", time: at.value };
    case "position":
      return { kind: "position", position: String(at.value) };
  }
}
