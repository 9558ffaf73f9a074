"""Stream-subscribes with a handler, with the TypeScript SDK's semantics.

A handler that returns acks its event; one that raises nacks it (retried by the subscription's
policy), or rejects it (`raise reject(...)`: dead-lettered now) or retries it after a delay
(`raise retry_after(seconds)`). At most `concurrency` handlers run at once; the broker sends no more
than the window (`max_outstanding_messages`, `max_outstanding_bytes`). A running handler's lease is
extended every half ack deadline, up to `max_extension`. Acks of one event-loop turn go in one
message; every settle gets a result per ack id (`on_result`), and a settle the broker refuses is
reported to `on_error` as `SettleRefused` (a refused reject or delayed nack falls back to a plain
nack). The stream reconnects with jittered backoff when it breaks, and when no message (deliveries,
results or the broker's heartbeats, whose interval `opened` announces) came for `max_missed_heartbeats`
intervals, which is how a dead connection is told from a quiet one. `close()` drains.

States: connecting (a stream is opening) -> open -> backoff (between streams) -> connecting ...;
draining (close() lets handlers finish) -> closed. Errors that reconnecting cannot fix (the
subscription does not exist, permission denied, ...) close it and fail `ready` and `done`.
"""

import asyncio
import collections
import inspect
import random
from typing import Callable, Deque, Dict, Optional, Sequence, Set, Type

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message as ProtoMessage

from pgmesh.ack_batcher import AckBatcher
from pgmesh.events import PayloadTypeMismatch, decode_payload, received
from pgmesh.heartbeats import HeartbeatMonitor
from pgmesh.outcomes import RejectEvent, RetryEventAfter
from pgmesh.v1 import subscriber_pb2, subscriber_pb2_grpc

# What the broker accepts (pgmesh/v1/subscriber.proto): the subscriber never asks for more, so a
# handler's outcome is never refused for its size.
MAX_WINDOW = 10_000
MAX_REASON_LENGTH = 1024
MAX_NACK_DELAY_SECONDS = 24 * 60 * 60
MAX_EXTEND_SECONDS = 60 * 60

# Errors that reconnecting cannot fix: the subscription is wrong, not the connection.
FATAL = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)

REFUSED = frozenset(
    {subscriber_pb2.ACK_STATUS_INVALID_ARGUMENT, subscriber_pb2.ACK_STATUS_FAILED_PRECONDITION}
)

_HALF_CLOSE = object()
_END = object()


class SettleRefused(Exception):
    """A settle the broker refused for one delivery (its AckResult says why); the subscriber goes on."""

    def __init__(self, ack_id: str, settle: str, status: int, reason: str, fallback: str) -> None:
        super().__init__(
            f"the broker refused to {settle} {ack_id}: {reason}"
            + ("; nacked it instead" if fallback == "nacked" else "")
        )
        self.ack_id, self.settle, self.status, self.reason, self.fallback = ack_id, settle, status, reason, fallback


class HeartbeatsMissed(Exception):
    """No message from the broker for the announced number of heartbeat intervals: the connection is
    presumed dead, and the subscriber reconnects on a new one."""


class SubscriberClosed(Exception):
    """The subscriber was closed before its stream opened."""


class _Stream:
    """One Subscribe call: its request queue (one writer task sends them in order) and its acks."""

    def __init__(self, call) -> None:
        self.call = call
        self.outbox: "asyncio.Queue[object]" = asyncio.Queue()
        self.live = True
        self.acks = AckBatcher(lambda ack_ids: self.send(subscriber_pb2.SubscribeRequest(
            ack=subscriber_pb2.Ack(ack_ids=ack_ids))))

    def send(self, request) -> None:
        if self.live:
            self.outbox.put_nowait(request)


class Subscriber:
    def __init__(
        self,
        client,
        subscription: str,
        handler: Callable,
        *,
        message_types: Sequence[Type[ProtoMessage]] = (),
        concurrency: int = 10,
        max_outstanding_messages: Optional[int] = None,
        max_outstanding_bytes: int = 0,
        max_extension: float = 3600.0,
        consumer_name: str = "",
        reconnect_initial: float = 0.1,
        reconnect_max: float = 1.0,
        close_timeout: float = 10.0,
        max_missed_heartbeats: int = 3,
        on_error: Optional[Callable[[BaseException], None]] = None,
        on_result: Optional[Callable[[subscriber_pb2.AckResult], None]] = None,
    ) -> None:
        self.subscription = subscription
        self._client = client
        self._handler = handler
        self._types = tuple(message_types)
        self._concurrency = max(1, int(concurrency))
        self._window = min(max_outstanding_messages or self._concurrency, MAX_WINDOW)
        self._window_bytes = max_outstanding_bytes
        self._max_extension = max_extension
        self._consumer_name = consumer_name
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._backoff = reconnect_initial
        self._close_timeout = close_timeout
        self._max_missed = max_missed_heartbeats
        self._on_error = on_error
        self._on_result = on_result
        self.state = "connecting"
        self.heartbeat_interval: Optional[float] = None
        """The interval the broker announced in `opened`, in seconds."""
        self._ack_deadline = 60.0
        self._stream: Optional[_Stream] = None
        self._backlog: Deque[subscriber_pb2.Delivery] = collections.deque()
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: Set[asyncio.Task] = set()
        # Nacks and rejects sent and not yet answered, so that a refused one can fall back to a nack.
        self._unanswered: Dict[str, str] = {}
        self._closing = False
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        """Resolves once the first stream is open; fails when the subscription cannot be opened."""
        self.done: asyncio.Future = loop.create_future()
        """Resolves when the subscriber stops for good: after close(), or on an error it cannot retry."""
        # Whoever awaits only one of the two must not hear of the other's exception as never retrieved.
        self.ready.add_done_callback(_retrieve)
        self.done.add_done_callback(_retrieve)
        self._task = loop.create_task(self._run())

    async def __aenter__(self) -> "Subscriber":
        await self.ready
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def set_flow(self, max_outstanding_messages: int, max_outstanding_bytes: Optional[int] = None) -> None:
        """Changes the window (0 pauses; bytes 0 lifts the byte limit) on this and later streams."""
        self._window = min(max_outstanding_messages, MAX_WINDOW)
        if max_outstanding_bytes is not None:
            self._window_bytes = max_outstanding_bytes
        flow = subscriber_pb2.FlowControl(max_outstanding_messages=self._window)
        if max_outstanding_bytes is not None:
            flow.max_outstanding_bytes = max_outstanding_bytes
        if self._stream is not None:
            self._stream.send(subscriber_pb2.SubscribeRequest(flow=flow))

    async def close(self, timeout: Optional[float] = None) -> None:
        """Stops taking deliveries, lets running handlers finish and settle (up to `timeout` seconds,
        by default `close_timeout`), then ends the stream. Deliveries not settled by then go back."""
        if self._closing:
            await asyncio.wait([self.done])
            return
        self._closing = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._close_timeout if timeout is None else timeout)
        stream = self._stream
        try:
            if stream is not None and self.state == "open":
                self.state = "draining"
                stream.send(subscriber_pb2.SubscribeRequest(
                    flow=subscriber_pb2.FlowControl(max_outstanding_messages=0)))
                # Deliveries not yet started go back to the broker when the stream ends.
                self._backlog.clear()
                await _wait_until(self._idle.wait(), deadline)
                stream.acks.flush()
                stream.send(_HALF_CLOSE)
                await _wait_until(asyncio.shield(self._task), deadline)
        finally:
            if not self._task.done():
                self._task.cancel()
            await asyncio.wait([self._task])
            for task in list(self._tasks):
                task.cancel()
            self._settle_futures(None)

    async def _run(self) -> None:
        channel = self._client.new_channel()
        try:
            while not self._closing:
                self.state = "connecting"
                try:
                    await self._stream_once(channel)
                except grpc.aio.AioRpcError as error:
                    if self._closing:
                        break
                    if error.code() in FATAL:
                        self._settle_futures(error)
                        return
                    self._report(error)
                except HeartbeatsMissed as error:
                    self._report(error)
                    # Calls on the same connection would wait on the same dead socket: start afresh.
                    await channel.close()
                    channel = self._client.new_channel()
                if self._closing:
                    break
                self.state = "backoff"
                delay = random.random() * self._backoff
                self._backoff = min(self._reconnect_max, self._backoff * 2)
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.state = "closed"
            await channel.close()

    async def _stream_once(self, channel) -> None:
        stub = subscriber_pb2_grpc.SubscriberServiceStub(channel)
        # Wait for the channel instead of failing while the broker is down: the stream then opens
        # the moment the channel reconnects.
        call = stub.Subscribe(metadata=self._client.metadata, wait_for_ready=True)
        stream = _Stream(call)
        self._stream = stream
        responses: "asyncio.Queue[object]" = asyncio.Queue()
        writer = asyncio.create_task(_write(stream))
        reader = asyncio.create_task(_read(call, responses))
        stream.send(subscriber_pb2.SubscribeRequest(open=subscriber_pb2.Open(
            subscription=self.subscription,
            consumer=self._consumer_name,
            max_outstanding_messages=self._window,
            max_outstanding_bytes=self._window_bytes,
        )))
        monitor: Optional[HeartbeatMonitor] = None
        try:
            while True:
                try:
                    item = await asyncio.wait_for(responses.get(), monitor.time_left() if monitor else None)
                except asyncio.TimeoutError:
                    raise HeartbeatsMissed(
                        f"no message from the broker for {monitor.missed()} heartbeat intervals of "
                        f"{monitor.interval:g} s: reconnecting"
                    ) from None
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                if monitor is not None:
                    monitor.beat()
                kind = item.WhichOneof("response")
                if kind == "opened":
                    opened = item.opened
                    self._ack_deadline = opened.ack_deadline.ToTimedelta().total_seconds() or 60.0
                    self.heartbeat_interval = opened.heartbeat_interval.ToTimedelta().total_seconds()
                    monitor = HeartbeatMonitor.for_announced(self.heartbeat_interval, self._max_missed)
                    self._backoff = self._reconnect_initial
                    if not self._closing:
                        self.state = "open"
                    if not self.ready.done():
                        self.ready.set_result(None)
                elif kind == "deliveries":
                    self._backlog.extend(item.deliveries.deliveries)
                    self._pump()
                elif kind == "ack_results":
                    for result in item.ack_results.results:
                        self._on_ack_result(stream, result)
        finally:
            # What this stream held is released by the broker; handlers still running settle into the void.
            stream.live = False
            stream.acks.drop()
            self._stream = None
            self._backlog.clear()
            self._unanswered.clear()
            call.cancel()
            writer.cancel()
            reader.cancel()

    def _pump(self) -> None:
        while self._running < self._concurrency and self._backlog and not self._closing:
            delivery = self._backlog.popleft()
            stream = self._stream
            if stream is None:
                return
            self._running += 1
            self._idle.clear()
            task = asyncio.create_task(self._handle(stream, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._running -= 1
        if self._running == 0:
            self._idle.set()
        self._pump()

    async def _handle(self, stream: _Stream, delivery) -> None:
        ack_id = delivery.ack_id
        extender = asyncio.create_task(self._extend(stream, ack_id))
        try:
            event = received(delivery, decode_payload(delivery.event, self._types))
            outcome = self._handler(event)
            if inspect.isawaitable(outcome):
                await outcome
            stream.acks.add(ack_id)
        except PayloadTypeMismatch as error:
            self._report(error)
            self._settle(stream, ack_id, "reject", str(error))
        except RejectEvent as error:
            self._settle(stream, ack_id, "reject", error.reason)
        except RetryEventAfter as error:
            self._settle(stream, ack_id, "nack", error.reason, delay=error.seconds)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the handler failed: retry by the subscription's policy
            self._settle(stream, ack_id, "nack", str(error) or type(error).__name__)
        finally:
            extender.cancel()

    async def _extend(self, stream: _Stream, ack_id: str) -> None:
        """Keeps the lease while the handler works: every half deadline, up to max_extension."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            await asyncio.sleep(self._ack_deadline / 2)
            if loop.time() - started >= self._max_extension:
                return
            seconds = min(MAX_EXTEND_SECONDS, max(1, round(self._ack_deadline)))
            stream.send(subscriber_pb2.SubscribeRequest(extend=subscriber_pb2.Extend(
                ack_ids=[ack_id], duration=duration_pb2.Duration(seconds=seconds))))

    def _settle(self, stream: _Stream, ack_id: str, kind: str, reason: str, delay: Optional[float] = None) -> None:
        if not stream.live:
            return
        self._unanswered[ack_id] = kind
        reason = _settle_reason(reason)
        if kind == "reject":
            request = subscriber_pb2.SubscribeRequest(reject=subscriber_pb2.Reject(ack_ids=[ack_id], reason=reason))
        else:
            nack = subscriber_pb2.Nack(ack_ids=[ack_id], reason=reason)
            if delay is not None:
                seconds = MAX_NACK_DELAY_SECONDS if delay != delay or delay == float("inf") else round(delay)
                nack.delay.seconds = min(MAX_NACK_DELAY_SECONDS, max(0, seconds))
            request = subscriber_pb2.SubscribeRequest(nack=nack)
        stream.send(request)

    def _on_ack_result(self, stream: _Stream, result) -> None:
        """A refused settle changed nothing: the delivery is still ours. A refused reject or delayed
        nack falls back to a plain nack (which the broker always takes), so one event never holds a
        lease until it lapses; every refusal is reported through on_error."""
        sent = self._unanswered.pop(result.ack_id, None)
        if self._on_result is not None:
            self._on_result(result)
        if result.status not in REFUSED:
            return
        fallback = sent in ("nack", "reject")
        if fallback:
            self._unanswered[result.ack_id] = "fallback nack"
            stream.send(subscriber_pb2.SubscribeRequest(nack=subscriber_pb2.Nack(
                ack_ids=[result.ack_id], reason=_settle_reason(result.message))))
        self._report(SettleRefused(result.ack_id, sent or "extend", result.status, result.message,
                                   "nacked" if fallback else "none"))

    def _report(self, error: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(error)

    def _settle_futures(self, error: Optional[BaseException]) -> None:
        if not self.ready.done():
            self.ready.set_exception(error or SubscriberClosed("the subscriber was closed before its stream opened"))
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)


async def _write(stream: _Stream) -> None:
    try:
        while True:
            request = await stream.outbox.get()
            if request is _HALF_CLOSE:
                await stream.call.done_writing()
                return
            await stream.call.write(request)
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return  # the call ended; the reader reports why


async def _read(call, responses: "asyncio.Queue[object]") -> None:
    try:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                responses.put_nowait(_END)
                return
            responses.put_nowait(response)
    except grpc.aio.AioRpcError as error:
        responses.put_nowait(error)


async def _wait_until(awaitable, deadline: float) -> None:
    try:
        await asyncio.wait_for(awaitable, max(0.0, deadline - asyncio.get_running_loop().time()))
    except asyncio.TimeoutError:
        pass


def _settle_reason(reason: str) -> str:
    """A reason the broker stores: no NUL characters, at most MAX_REASON_LENGTH characters."""
    return reason.replace("\0", "")[:MAX_REASON_LENGTH]


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
