"""pgmesh: publish to and stream-subscribe from a pgmesh broker; the pgmesh.v1 stubs are in pgmesh.v1."""

from pgmesh.client import Client, connect
from pgmesh.events import TYPE_URL_PREFIX, Message, PayloadTypeMismatch, ReceivedEvent, topic_of
from pgmesh.outcomes import RejectEvent, RetryEventAfter, reject, retry_after
from pgmesh.retry import RetrySettings, is_retryable
from pgmesh.subscriber import HeartbeatsMissed, SettleRefused, Subscriber, SubscriberClosed

__all__ = [
    "Client",
    "HeartbeatsMissed",
    "Message",
    "PayloadTypeMismatch",
    "ReceivedEvent",
    "RejectEvent",
    "RetryEventAfter",
    "RetrySettings",
    "SettleRefused",
    "Subscriber",
    "SubscriberClosed",
    "TYPE_URL_PREFIX",
    "connect",
    "is_retryable",
    "reject",
    "retry_after",
    "topic_of",
]
