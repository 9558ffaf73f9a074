// Conversions between the generated wire types and the delivery layer's records.
import { Any } from "@pgmesh/sdk/gen/google/protobuf/any";
import type { Duration } from "@pgmesh/sdk/gen/google/protobuf/duration";
import type {
  Subscription as SubscriptionMessage,
  Topic as TopicMessage,
} from "@pgmesh/sdk/gen/pgmesh/v1/admin";
import { Event } from "@pgmesh/sdk/gen/pgmesh/v1/event";
import { invalidArgument } from "../delivery/errors.ts";
import type { EventEnvelope, StoredEvent, Subscription, Topic } from "../delivery/model.ts";

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
  });
}

export const topicToWire = (topic: Topic): TopicMessage => ({
  name: topic.name,
  createTime: topic.createdAt,
});

export const subscriptionToWire = (sub: Subscription): SubscriptionMessage => ({
  name: sub.name,
  topic: sub.topic,
  ackDeadline: { seconds: sub.ackDeadlineSeconds, nanos: 0 },
  createTime: sub.createdAt,
});

/** A Duration as whole seconds; fractions are refused rather than silently rounded. */
export function wholeSeconds(field: string, duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  if (duration.nanos !== 0) throw invalidArgument(`${field} must be a whole number of seconds`);
  return Number(duration.seconds);
}
