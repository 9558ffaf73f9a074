"""A client for one broker: publish (batched, idempotent, retried), subscribe, and the admin stub."""

import datetime
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Type, Union

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message as ProtoMessage

from pgmesh.events import Message, topic_of
from pgmesh.retry import RetrySettings, with_retries
from pgmesh.v1 import admin_pb2, admin_pb2_grpc, publisher_pb2, publisher_pb2_grpc

# What one Publish request may hold (README, "How it works"): 1,000 events and 4 MiB encoded. The
# client keeps a margin under the byte limit for the request's own framing.
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024


class Client:
    """Connects to a pgmesh broker (host:port). Use `async with pgmesh.connect(...) as client`.

    TLS: pass `root_certificates` (PEM bytes of the CA), and `certificate_chain` and `private_key`
    for mutual TLS. `token` is sent as `authorization: Bearer <token>` on every call.
    """

    def __init__(
        self,
        address: str,
        *,
        source: str = "pgmesh-python",
        token: Optional[str] = None,
        root_certificates: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        retry: RetrySettings = RetrySettings(),
        channel_options: Sequence[Tuple[str, object]] = (),
    ) -> None:
        self.address = address
        self.source = source
        self.retry = retry
        self._token = token
        self._tls = (root_certificates, private_key, certificate_chain)
        self._channel_options = list(channel_options)
        self._channel = self.new_channel()
        self.publisher = publisher_pb2_grpc.PublisherServiceStub(self._channel)
        """The generated stub, for what the client does not wrap."""
        self.admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        """The generated AdminService stub; pass `metadata=client.metadata` when a token is set."""
        self._subscribers: List["Subscriber"] = []

    def new_channel(self) -> grpc.aio.Channel:
        """A channel of its own: a subscriber that presumes its connection dead replaces it."""
        options = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            # gRPC shares connections between channels to one address by default; a replacement
            # channel would then inherit the very connection it replaces.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        options += self._channel_options
        root, key, chain = self._tls
        if root is None and chain is None:
            return grpc.aio.insecure_channel(self.address, options=options)
        credentials = grpc.ssl_channel_credentials(root, key, chain)
        return grpc.aio.secure_channel(self.address, credentials, options=options)

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        return (("authorization", f"Bearer {self._token}"),) if self._token else ()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the subscribers (each drains first), then the channel."""
        for subscriber in list(self._subscribers):
            await subscriber.close()
        await self._channel.close()

    async def publish(
        self, topic: Optional[str], messages: Iterable[Union[Message, ProtoMessage]]
    ) -> List[publisher_pb2.PublishResult]:
        """Publishes events to `topic` (None: each message's (pgmesh.v1.event).topic, one topic for all).

        Events go in requests of at most 1,000 events and 4 MiB, in order; each request is retried
        on UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED with the same ids, so a retry is never stored
        twice. Returns one result per event (`duplicate` when the broker had its id already).
        """
        wrapped = [m if isinstance(m, Message) else Message(data=m) for m in messages]
        if topic is None:
            topics = {topic_of(type(m.data)) for m in wrapped if isinstance(m.data, ProtoMessage)}
            if len(topics) != 1 or any(not isinstance(m.data, ProtoMessage) for m in wrapped):
                raise ValueError("publish(None, ...) needs messages of types bound to one topic")
            topic = topics.pop()
        events = [m.to_wire(self.source) for m in wrapped]
        results: List[publisher_pb2.PublishResult] = []
        for batch in _batches(events):
            request = publisher_pb2.PublishRequest(topic=topic, events=batch)

            async def attempt(seconds_left: float, request=request):
                return await self.publisher.Publish(request, timeout=seconds_left, metadata=self.metadata)

            response = await with_retries(attempt, self.retry)
            results.extend(response.results)
        return results

    async def publish_event(self, message: ProtoMessage, **envelope) -> publisher_pb2.PublishResult:
        """Publishes one message on the topic its type is bound to; `envelope` as in `Message`."""
        (result,) = await self.publish(topic_of(type(message)), [Message(data=message, **envelope)])
        return result

    def subscribe(
        self,
        subscription: str,
        handler: Callable,
        *,
        message_type: Union[Type[ProtoMessage], Sequence[Type[ProtoMessage]], None] = None,
        **options,
    ) -> "Subscriber":
        """Starts a Subscriber (see its options); `message_type`: the class(es) to decode payloads into."""
        from pgmesh.subscriber import Subscriber

        types = () if message_type is None else (
            tuple(message_type) if isinstance(message_type, (list, tuple)) else (message_type,)
        )
        subscriber = Subscriber(self, subscription, handler, message_types=types, **options)
        self._subscribers.append(subscriber)
        subscriber.done.add_done_callback(lambda _: self._forget(subscriber))
        return subscriber

    def _forget(self, subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    async def create_topic(self, name: str) -> admin_pb2.Topic:
        response = await self.admin.CreateTopic(admin_pb2.CreateTopicRequest(name=name), metadata=self.metadata)
        return response.topic

    async def create_subscription(
        self,
        name: str,
        topic: str,
        *,
        ack_deadline: Optional[float] = None,
        max_delivery_attempts: Optional[int] = None,
        dead_lettering: Optional[bool] = None,
        initial_backoff: Optional[float] = None,
    ) -> admin_pb2.Subscription:
        """Creates a subscription; durations in seconds (whole seconds, as the broker takes them)."""
        request = admin_pb2.CreateSubscriptionRequest(name=name, topic=topic)
        if ack_deadline is not None:
            request.ack_deadline.CopyFrom(_duration(ack_deadline))
        if max_delivery_attempts is not None:
            request.max_delivery_attempts = max_delivery_attempts
        if dead_lettering is not None:
            request.dead_lettering = dead_lettering
        if initial_backoff is not None:
            request.retry_policy.initial_backoff.CopyFrom(_duration(initial_backoff))
        response = await self.admin.CreateSubscription(request, metadata=self.metadata)
        return response.subscription


def connect(address: str, **options) -> Client:
    """Connects to a pgmesh broker (host:port); see `Client` for the options."""
    return Client(address, **options)


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(datetime.timedelta(seconds=seconds))
    return duration


def _batches(events):
    batch, size = [], 0
    for event in events:
        event_size = event.ByteSize() + 8
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + event_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        yield batch
