"""Events as the application sees them: typed payloads in, typed payloads out.

A payload travels as a google.protobuf.Any whose type URL names the message, as the TypeScript SDK
sends it, so a Python consumer decodes into its own generated class and a TypeScript one into its own.
"""

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Dict, Generic, Optional, Sequence, Type, TypeVar, Union

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import DecodeError, Message as ProtoMessage

from pgmesh.v1 import event_pb2, options_pb2

TYPE_URL_PREFIX = "type.googleapis.com/"

T = TypeVar("T")


@dataclass
class Message:
    """One event to publish. `data` is your message (packed with its type URL) or raw bytes.

    `id` is chosen here when left empty, before the first attempt, so that every retry is the same
    (topic, source, id) and the broker answers a repeat as a duplicate.
    """

    data: Union[ProtoMessage, bytes, None] = None
    id: str = ""
    type: str = ""
    subject: str = ""
    attributes: Dict[str, str] = field(default_factory=dict)
    ordering_key: str = ""
    time: Optional[datetime.datetime] = None
    deliver_after: Optional[datetime.datetime] = None
    source: str = ""

    def to_wire(self, default_source: str) -> event_pb2.Event:
        event = event_pb2.Event(
            id=self.id or str(uuid.uuid4()),
            source=self.source or default_source,
            type=self.type,
            subject=self.subject,
            attributes=self.attributes,
            ordering_key=self.ordering_key,
        )
        if isinstance(self.data, ProtoMessage):
            event.data.Pack(self.data, type_url_prefix=TYPE_URL_PREFIX.rstrip("/"))
            if not event.type:
                event.type = self.data.DESCRIPTOR.full_name
        elif self.data is not None:
            event.data.CopyFrom(any_pb2.Any(value=bytes(self.data)))
        if self.time is not None:
            event.time.FromDatetime(_utc(self.time))
        if self.deliver_after is not None:
            event.deliver_after.FromDatetime(_utc(self.deliver_after))
        return event


def topic_of(message_class: Type[ProtoMessage]) -> str:
    """The topic a message type is published on: its `option (pgmesh.v1.event).topic` in the .proto."""
    options = message_class.DESCRIPTOR.GetOptions()
    topic = options.Extensions[options_pb2.event].topic if options.HasExtension(options_pb2.event) else ""
    if not topic:
        raise ValueError(
            f"{message_class.DESCRIPTOR.full_name} has no (pgmesh.v1.event).topic option: "
            "name the topic when publishing it"
        )
    return topic


@dataclass
class ReceivedEvent(Generic[T]):
    """A delivered event; `data` is the decoded payload (the payload's bytes without a message type)."""

    id: str
    source: str
    type: str
    subject: str
    topic: str
    time: Optional[datetime.datetime]
    attributes: Dict[str, str]
    ordering_key: str
    publish_time: Optional[datetime.datetime]
    attempt: int
    """1 on the first delivery."""
    data: T
    raw: event_pb2.Event
    ack_id: str


class PayloadTypeMismatch(Exception):
    """A delivered payload is not of the message type(s) the subscriber decodes into."""


def decode_payload(event: event_pb2.Event, message_types: Sequence[Type[ProtoMessage]]):
    """The payload as an instance of whichever of `message_types` its type URL names, or its bytes."""
    if not message_types:
        return bytes(event.data.value)
    type_name = event.data.type_url.rsplit("/", 1)[-1]
    for message_type in message_types:
        if message_type.DESCRIPTOR.full_name == type_name:
            try:
                return message_type.FromString(event.data.value)
            except DecodeError as error:
                raise PayloadTypeMismatch(f"the payload does not decode as {type_name}: {error}") from error
    expected = ", ".join(t.DESCRIPTOR.full_name for t in message_types)
    actual = type_name or f"no payload type (event type {event.type or 'unset'})"
    raise PayloadTypeMismatch(f"expected {expected}, got {actual}")


def received(delivery, data) -> ReceivedEvent:
    event = delivery.event
    return ReceivedEvent(
        id=event.id,
        source=event.source,
        type=event.type,
        subject=event.subject,
        topic=event.topic,
        time=_datetime(event, "time"),
        attributes=dict(event.attributes),
        ordering_key=event.ordering_key,
        publish_time=_datetime(event, "publish_time"),
        attempt=delivery.delivery_attempt,
        data=data,
        raw=event,
        ack_id=delivery.ack_id,
    )


def _datetime(event: event_pb2.Event, name: str) -> Optional[datetime.datetime]:
    if not event.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(event, name)
    return stamp.ToDatetime(tzinfo=datetime.timezone.utc)


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
