"""Pure logic, no broker: the heartbeat monitor on a fake clock, ack batching per loop turn, request
batching under the broker's limits, and the wire form of a message to publish."""

import asyncio

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

import pgmesh
from pgmesh.ack_batcher import AckBatcher
from pgmesh.client import MAX_BATCH_BYTES, _batches
from pgmesh.events import decode_payload
from pgmesh.heartbeats import HeartbeatMonitor
from pgmesh.v1 import event_pb2


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_installed_package_is_the_one_under_test():
    # Run from the built wheel, not from python/src.
    assert "site-packages" in pgmesh.__file__


def test_heartbeat_monitor_counts_missed_intervals_and_resets_on_any_message():
    clock = FakeClock()
    monitor = HeartbeatMonitor(interval=2.0, max_missed=3, clock=clock)
    assert monitor.time_left() == 6.0
    clock.now += 5.9
    assert monitor.missed() == 2 and not monitor.dead()
    monitor.beat()
    assert monitor.time_left() == 6.0
    clock.now += 6.0
    assert monitor.missed() == 3 and monitor.dead()


def test_no_announced_interval_means_no_monitor_rather_than_a_stream_dead_at_once():
    assert HeartbeatMonitor.for_announced(0.0, 3) is None
    assert HeartbeatMonitor.for_announced(15.0, 0) is None
    assert HeartbeatMonitor.for_announced(15.0, 3).time_left() > 44


def test_ack_batcher_sends_one_message_per_loop_turn():
    sent = []

    async def scenario():
        batcher = AckBatcher(sent.append)
        for ack_id in ("a", "b", "c"):
            batcher.add(ack_id)
        assert sent == []
        await asyncio.sleep(0)
        batcher.add("d")
        batcher.flush()
        batcher.add("e")
        batcher.drop()
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert sent == [["a", "b", "c"], ["d"]]


def test_batches_keep_under_a_thousand_events_and_the_byte_limit():
    small = [event_pb2.Event(id=str(i)) for i in range(2500)]
    assert [len(b) for b in _batches(small)] == [1000, 1000, 500]
    large = [event_pb2.Event(id=str(i), subject="x" * 1_000_000) for i in range(9)]
    batches = list(_batches(large))
    assert [len(b) for b in batches] == [4, 4, 1]
    assert all(sum(e.ByteSize() for e in b) < MAX_BATCH_BYTES for b in batches)


def test_a_message_packs_its_payload_with_type_url_and_keeps_its_id():
    wire = pgmesh.Message(data=timestamp_pb2.Timestamp(seconds=7), id="e-1", attributes={"k": "v"}).to_wire("svc")
    assert (wire.id, wire.source, wire.type) == ("e-1", "svc", "google.protobuf.Timestamp")
    assert wire.data.type_url == "type.googleapis.com/google.protobuf.Timestamp"
    assert decode_payload(wire, [timestamp_pb2.Timestamp]) == timestamp_pb2.Timestamp(seconds=7)
    # No id given: one is chosen, different each time.
    assert pgmesh.Message(data=b"x").to_wire("svc").id != pgmesh.Message(data=b"x").to_wire("svc").id


def test_decoding_into_the_wrong_type_names_both():
    wire = pgmesh.Message(data=duration_pb2.Duration(seconds=1)).to_wire("svc")
    with pytest.raises(pgmesh.PayloadTypeMismatch, match="expected google.protobuf.Timestamp, got google.protobuf.Duration"):
        decode_payload(wire, [timestamp_pb2.Timestamp])


def test_topic_of_a_message_without_the_option_is_an_error():
    with pytest.raises(ValueError, match="no \\(pgmesh.v1.event\\).topic option"):
        pgmesh.topic_of(timestamp_pb2.Timestamp)
