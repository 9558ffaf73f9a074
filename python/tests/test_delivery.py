"""The delivery contract through the Python client, against a real broker (PGMESH_ADDRESS): typed
round trip, idempotent and retried publishes, per-id settle results, nack with delay, reject to the
dead-letter table, lease extension, the window in messages and in bytes, reconnects, heartbeats,
and a draining close."""

import asyncio
import time

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

import pgmesh
from pgmesh.v1 import admin_pb2, subscriber_pb2
from support import Proxy, raw, address, asyncio_test, eventually, topic_with_subscription

ACKED = subscriber_pb2.ACK_STATUS_ACKED


@asyncio_test
async def test_typed_round_trip_with_envelope():
    async with pgmesh.connect(address(), source="py-test") as client:
        topic, subscription = await topic_with_subscription(client)
        got = asyncio.Queue()
        subscriber = client.subscribe(subscription, got.put_nowait, message_type=timestamp_pb2.Timestamp)
        await subscriber.ready
        [result] = await client.publish(topic, [pgmesh.Message(
            data=timestamp_pb2.Timestamp(seconds=1_800_000_000), id="t-1", subject="clock/1",
            attributes={"zone": "utc"}, ordering_key="k")])
        assert (result.id, result.duplicate) == ("t-1", False)
        event = await got.get()
        assert isinstance(event.data, timestamp_pb2.Timestamp) and event.data.seconds == 1_800_000_000
        assert (event.id, event.source, event.type, event.topic) == ("t-1", "py-test", "google.protobuf.Timestamp", topic)
        assert (event.subject, event.attributes, event.ordering_key, event.attempt) == ("clock/1", {"zone": "utc"}, "k", 1)
        assert event.publish_time is not None


@asyncio_test
async def test_a_repeated_id_is_a_duplicate_and_delivered_once():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        message = raw(b"once", id="same")
        first = await client.publish(topic, [message])
        second = await client.publish(topic, [message])
        assert [first[0].duplicate, second[0].duplicate] == [False, True]
        seen = []
        subscriber = client.subscribe(subscription, seen.append)
        await eventually(lambda: len(seen) == 1)
        await asyncio.sleep(0.3)
        assert [e.data for e in seen] == [b"once"]
        await subscriber.close()


@asyncio_test
async def test_many_events_go_in_several_requests_and_all_arrive():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        results = await client.publish(topic, [raw(b"%d" % i) for i in range(2500)])
        assert len({r.id for r in results}) == 2500 and not any(r.duplicate for r in results)
        seen = set()
        subscriber = client.subscribe(subscription, lambda e: seen.add(e.data), concurrency=100)
        await eventually(lambda: len(seen) == 2500, timeout=40)
        await subscriber.close()


@asyncio_test
async def test_publish_retries_until_the_broker_is_reachable_with_the_same_ids():
    proxy = await Proxy(address()).start()
    port = proxy.port
    await proxy.stop_listening()  # refused at first: UNAVAILABLE
    async with pgmesh.connect(proxy.address, retry=pgmesh.RetrySettings(max_backoff=0.2, total_timeout=20)) as client:
        topic, _ = await topic_with_subscription(pgmesh.connect(address()))
        publishing = asyncio.create_task(client.publish(topic, [raw(b"x", id="r-1")]))
        await asyncio.sleep(0.8)
        assert not publishing.done()
        await proxy.start(port)
        [result] = await publishing
        assert (result.id, result.duplicate) == ("r-1", False)


@asyncio_test
async def test_each_settle_gets_a_result_per_ack_id():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        results, seen = [], []

        def handle(event):
            seen.append(event.ack_id)

        subscriber = client.subscribe(subscription, handle, on_result=results.append, concurrency=5)
        await subscriber.ready
        await client.publish(topic, [raw(b"%d" % i) for i in range(5)])
        await eventually(lambda: len(results) == 5)
        assert sorted(r.ack_id for r in results) == sorted(seen)
        assert {r.status for r in results} == {ACKED}
        await subscriber.close()


@asyncio_test
async def test_retry_after_nacks_with_its_delay():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client, initial_backoff=30)
        attempts, results = [], []

        def handle(event):
            attempts.append((event.attempt, time.monotonic()))
            if event.attempt == 1:
                raise pgmesh.retry_after(2, "not yet")

        client.subscribe(subscription, handle, on_result=results.append)
        await client.publish(topic, [raw(b"x")])
        await eventually(lambda: len(attempts) == 2, timeout=15)
        waited = attempts[1][1] - attempts[0][1]
        # The nack's own delay wins over the subscription's 30 s backoff.
        assert 1.5 <= waited < 10, waited
        await eventually(lambda: len(results) == 2)
        assert [r.status for r in results] == [subscriber_pb2.ACK_STATUS_NACKED, ACKED]


@asyncio_test
async def test_a_failing_handler_nacks_and_the_event_comes_back():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client, initial_backoff=1)
        attempts = []

        def handle(event):
            attempts.append(event.attempt)
            if event.attempt < 3:
                raise RuntimeError("flaky")

        client.subscribe(subscription, handle)
        await client.publish(topic, [raw(b"x")])
        await eventually(lambda: attempts == [1, 2, 3], timeout=20)


@asyncio_test
async def test_reject_dead_letters_with_the_reason():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        results = []

        def handle(event):
            raise pgmesh.reject("bad address")

        client.subscribe(subscription, handle, on_result=results.append)
        await client.publish(topic, [raw(b"poison", id="p-1")])
        await eventually(lambda: len(results) == 1)
        assert results[0].status == subscriber_pb2.ACK_STATUS_DEAD_LETTERED
        listed = await client.admin.ListDeadLetters(admin_pb2.ListDeadLettersRequest(
            filter=admin_pb2.DeadLetterFilter(subscription=subscription)))
        [dead] = listed.dead_letters
        assert (dead.event.id, dead.reason, dead.last_error) == ("p-1", admin_pb2.DEAD_LETTER_REASON_REJECTED, "bad address")


@asyncio_test
async def test_a_refused_reject_falls_back_to_a_nack_and_is_reported():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client, dead_lettering=False, initial_backoff=1)
        errors, attempts = [], []

        def handle(event):
            attempts.append(event.attempt)
            if event.attempt == 1:
                raise pgmesh.reject("no dead letters here")

        client.subscribe(subscription, handle, on_error=errors.append)
        await client.publish(topic, [raw(b"x")])
        await eventually(lambda: attempts == [1, 2], timeout=15)
        [refused] = [e for e in errors if isinstance(e, pgmesh.SettleRefused)]
        assert (refused.settle, refused.fallback) == ("reject", "nacked")
        assert refused.status == subscriber_pb2.ACK_STATUS_FAILED_PRECONDITION


@asyncio_test
async def test_a_payload_of_another_type_is_dead_lettered_naming_both_types():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        errors, results, handled = [], [], []
        client.subscribe(subscription, handled.append, message_type=timestamp_pb2.Timestamp,
                         on_error=errors.append, on_result=results.append)
        await client.publish(topic, [duration_pb2.Duration(seconds=3)])
        await eventually(lambda: len(results) == 1)
        assert handled == [] and results[0].status == subscriber_pb2.ACK_STATUS_DEAD_LETTERED
        assert "expected google.protobuf.Timestamp, got google.protobuf.Duration" in str(errors[0])


@asyncio_test
async def test_a_slow_handler_keeps_its_lease_by_extending_it():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client, ack_deadline=2)
        attempts, results = [], []

        async def handle(event):
            attempts.append(event.attempt)
            await asyncio.sleep(5)

        client.subscribe(subscription, handle, on_result=results.append)
        await client.publish(topic, [raw(b"slow")])
        await eventually(lambda: any(r.status == ACKED for r in results), timeout=20)
        statuses = [r.status for r in results]
        assert subscriber_pb2.ACK_STATUS_EXTENDED in statuses
        # Never redelivered, although the handler ran 2.5 ack deadlines.
        assert attempts == [1]


@asyncio_test
async def test_the_window_in_messages_caps_what_is_held_unsettled():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        release = asyncio.Event()
        running = []

        async def handle(event):
            running.append(event.id)
            await release.wait()

        client.subscribe(subscription, handle, concurrency=10, max_outstanding_messages=2)
        await client.publish(topic, [raw(b"x") for _ in range(6)])
        await eventually(lambda: len(running) == 2)
        await asyncio.sleep(0.5)
        assert len(running) == 2
        release.set()
        await eventually(lambda: len(running) == 6)


@asyncio_test
async def test_the_window_in_bytes_caps_what_is_held_unsettled():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        release = asyncio.Event()
        running = []

        async def handle(event):
            running.append(event.id)
            await release.wait()

        client.subscribe(subscription, handle, concurrency=10, max_outstanding_messages=100,
                         max_outstanding_bytes=2500)
        await client.publish(topic, [raw(b"x" * 1000) for _ in range(6)])
        # A soft limit: deliveries stop once the bytes held reach it (the last may pass it).
        await eventually(lambda: len(running) >= 2)
        await asyncio.sleep(0.5)
        assert 2 <= len(running) <= 3
        release.set()
        await eventually(lambda: len(running) == 6)


@asyncio_test
async def test_it_reconnects_when_the_connection_is_cut():
    proxy = await Proxy(address()).start()
    async with pgmesh.connect(proxy.address) as client:
        topic, subscription = await topic_with_subscription(client)
        seen, errors = [], []
        subscriber = client.subscribe(subscription, seen.append, on_error=errors.append)
        await subscriber.ready
        await client.publish(topic, [raw(b"before")])
        await eventually(lambda: len(seen) == 1)
        proxy.cut()
        await eventually(lambda: len(errors) >= 1)
        async with pgmesh.connect(address()) as direct:
            await direct.publish(topic, [raw(b"after")])
        await eventually(lambda: [e.data for e in seen] == [b"before", b"after"], timeout=15)
        assert subscriber.state == "open"


@asyncio_test
async def test_missed_heartbeats_mean_a_dead_connection_and_a_reconnect():
    proxy = await Proxy(address()).start()
    async with pgmesh.connect(proxy.address) as client:
        topic, subscription = await topic_with_subscription(client)
        seen, errors = [], []
        subscriber = client.subscribe(subscription, seen.append, on_error=errors.append, max_missed_heartbeats=3)
        await subscriber.ready
        interval = subscriber.heartbeat_interval
        assert interval and interval <= 1, "the test broker announces short heartbeats (PGMESH_HEARTBEAT_MS)"
        # The connection goes silent without closing: only the missing heartbeats tell.
        connections = len(proxy.connections)
        frozen_at = time.monotonic()
        proxy.freeze()
        await eventually(lambda: any(isinstance(e, pgmesh.HeartbeatsMissed) for e in errors), timeout=15)
        noticed = time.monotonic() - frozen_at
        assert 3 * interval - 0.2 <= noticed < 3 * interval + 3, noticed
        # A new stream opens on a new connection.
        await eventually(lambda: subscriber.state == "open" and len(proxy.connections) == connections + 1)
        # The broker still holds the old stream until it learns the connection is gone (here: now;
        # on a real network, its own timeouts); then what is published reaches the new one.
        proxy.cut_frozen()
        async with pgmesh.connect(address()) as direct:
            await direct.publish(topic, [raw(b"after")])
        await eventually(lambda: [e.data for e in seen] == [b"after"], timeout=15)


@asyncio_test
async def test_close_lets_a_running_handler_finish_and_ack():
    async with pgmesh.connect(address()) as client:
        topic, subscription = await topic_with_subscription(client)
        started, finished, results = asyncio.Event(), [], []

        async def handle(event):
            started.set()
            await asyncio.sleep(0.5)
            finished.append(event.id)

        subscriber = client.subscribe(subscription, handle, on_result=results.append)
        await client.publish(topic, [raw(b"x", id="c-1")])
        await started.wait()
        await subscriber.close()
        assert finished == ["c-1"] and [r.status for r in results] == [ACKED]
        assert subscriber.state == "closed" and subscriber.done.done()
        stats = await client.admin.GetSubscriptionStats(admin_pb2.GetSubscriptionStatsRequest(name=subscription))
        assert (stats.backlog, stats.in_flight) == (0, 0)


@asyncio_test
async def test_a_missing_subscription_fails_ready_and_done():
    async with pgmesh.connect(address()) as client:
        subscriber = client.subscribe("no.such.subscription", lambda e: None)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await subscriber.ready
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError):
            await subscriber.done
