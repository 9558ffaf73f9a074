#!/usr/bin/python3
"""Stream-subscribe to a pgmesh subscription from Python, using only protoc-generated stubs.

Prints each delivered event as one JSON line on stdout, acks it, and exits 0 once COUNT events
have been acked by the broker. Errors go to stderr with a non-zero exit code.

    /usr/bin/python3 examples/python-subscriber/subscriber.py \\
        --address 127.0.0.1:50051 --subscription orders.audit --count 3

Over TLS, trusting the CA that signed the broker's certificate, with a token (or PGMESH_TOKEN):

    /usr/bin/python3 examples/python-subscriber/subscriber.py --ca-file ca.crt --token "$TOKEN" ...
"""

import argparse
import base64
import json
import os
import queue
import sys

# The repository does not ignore __pycache__, and the generated stubs are committed: keep Python
# from leaving bytecode next to them.
sys.dont_write_bytecode = True
# The stubs import each other as `pgmesh.v1.*`, so their root must be on the path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

try:
    import grpc
    from pgmesh.v1 import subscriber_pb2, subscriber_pb2_grpc
except ImportError as error:
    sys.exit(
        f"subscriber: {error}: install Debian's python3-grpcio and python3-protobuf "
        "(apt-get install python3-grpcio python3-protobuf) and run with /usr/bin/python3"
    )

# Sentinel put on the request queue to end the request stream (a half-close).
_HALF_CLOSE = object()


def requests(outbox):
    """Feeds the stream from a queue, so the reading loop can send acks as deliveries arrive.

    gRPC consumes this generator on its own thread; it blocks on the queue between messages.
    """
    while True:
        message = outbox.get()
        if message is _HALF_CLOSE:
            return
        yield message


def event_json(delivery):
    event = delivery.event
    has_data = event.HasField("data")
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "topic": event.topic,
        "time": event.time.ToJsonString() if event.HasField("time") else None,
        "attempt": delivery.delivery_attempt,
        "attributes": dict(event.attributes),
        # The payload stays opaque here: a consumer that knows the type URL would Unpack it
        # into its own generated message class.
        "dataTypeUrl": event.data.type_url if has_data else None,
        "dataBase64": base64.b64encode(event.data.value).decode("ascii") if has_data else None,
    }


def open_channel(address, ca_file, cert_file, key_file):
    """A TLS channel when a CA file is given (with a client certificate for mutual TLS), else plaintext."""
    if not ca_file:
        return grpc.insecure_channel(address)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca_file),
        private_key=read(key_file) if key_file else None,
        certificate_chain=read(cert_file) if cert_file else None,
    )
    return grpc.secure_channel(address, credentials)


def subscribe(address, subscription, count, max_outstanding, channel_options, token):
    outbox = queue.Queue()
    outbox.put(
        subscriber_pb2.SubscribeRequest(
            open=subscriber_pb2.Open(
                subscription=subscription,
                consumer="python-subscriber",
                max_outstanding_messages=min(max_outstanding, count),
            )
        )
    )
    # Ack ids sent but not yet confirmed: an event only counts once the broker answers ACKED.
    pending = set()
    acked = 0
    window = min(max_outstanding, count)

    def fit_window():
        # Keep the broker from leasing more than COUNT events to this stream: extra leases would
        # only be handed back when it ends, and a handed-back delivery still counts as an attempt
        # towards the subscription's dead-letter limit. The broker handles messages in order, so a
        # window sent before an ack applies before that ack frees room.
        nonlocal window
        wanted = min(max_outstanding, count - acked - len(pending))
        if wanted != window:
            window = wanted
            outbox.put(
                subscriber_pb2.SubscribeRequest(flow=subscriber_pb2.FlowControl(max_outstanding_messages=window))
            )

    # The broker reads the caller's token from this header on every call.
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with open_channel(address, *channel_options) as channel:
        stub = subscriber_pb2_grpc.SubscriberServiceStub(channel)
        responses = stub.Subscribe(requests(outbox), metadata=metadata)
        try:
            for response in responses:
                kind = response.WhichOneof("response")
                if kind == "deliveries":
                    ack_ids = []
                    for delivery in response.deliveries.deliveries:
                        # A race can still bring more than COUNT; those stay unsettled and the
                        # broker hands them back to the subscription when this stream ends.
                        if acked + len(pending) + len(ack_ids) >= count:
                            continue
                        print(json.dumps(event_json(delivery)), flush=True)
                        ack_ids.append(delivery.ack_id)
                    if ack_ids:
                        pending.update(ack_ids)
                        fit_window()
                        outbox.put(subscriber_pb2.SubscribeRequest(ack=subscriber_pb2.Ack(ack_ids=ack_ids)))
                elif kind == "ack_results":
                    for result in response.ack_results.results:
                        if result.ack_id not in pending:
                            continue
                        pending.discard(result.ack_id)
                        if result.status == subscriber_pb2.ACK_STATUS_ACKED:
                            acked += 1
                        else:
                            # At-least-once: a stale ack (the lease lapsed) means the event will be
                            # delivered again, so it is not counted and is printed again then.
                            status = subscriber_pb2.AckStatus.Name(result.status)
                            print(f"subscriber: ack {result.ack_id} came back {status}", file=sys.stderr)
                    if acked >= count:
                        break
                    fit_window()
                # `opened` and heartbeats need no answer.
            else:
                raise SystemExit(
                    f"subscriber: the broker ended the stream after {acked} of {count} acked events"
                )
            # Half-close and read to the end, so the broker finishes the stream cleanly (status OK)
            # and releases any deliveries past COUNT before we go.
            outbox.put(_HALF_CLOSE)
            try:
                for _ in responses:
                    pass
            except grpc.RpcError as error:
                # The events are acked already; a failed goodbye does not undo that.
                print(f"subscriber: closing the stream: {error.code().name}: {error.details()}", file=sys.stderr)
        finally:
            # Unblocks the request thread on every path, including errors.
            outbox.put(_HALF_CLOSE)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1:50051", help="broker gRPC host:port (default %(default)s)")
    parser.add_argument("--subscription", required=True, help="subscription to read from")
    parser.add_argument("--count", type=int, default=1, help="exit after this many events are acked (default %(default)s)")
    parser.add_argument(
        "--max-outstanding",
        type=int,
        default=100,
        help="unsettled deliveries the broker may have on this stream at once, 1..10000 (default %(default)s)",
    )
    parser.add_argument("--ca-file", help="connect over TLS, trusting this CA certificate (PEM)")
    parser.add_argument("--cert-file", help="client certificate for mutual TLS (PEM)")
    parser.add_argument("--key-file", help="the client certificate's private key (PEM)")
    parser.add_argument(
        "--token", default=os.environ.get("PGMESH_TOKEN"), help="bearer token (default: $PGMESH_TOKEN)"
    )
    args = parser.parse_args()
    if bool(args.cert_file) != bool(args.key_file):
        parser.error("--cert-file and --key-file go together")
    if args.cert_file and not args.ca_file:
        parser.error("--cert-file needs --ca-file (mutual TLS)")
    if args.count < 1:
        parser.error("--count must be at least 1")
    if not 1 <= args.max_outstanding <= 10000:
        parser.error("--max-outstanding must be 1..10000")
    try:
        subscribe(
            args.address,
            args.subscription,
            args.count,
            args.max_outstanding,
            (args.ca_file, args.cert_file, args.key_file),
            args.token,
        )
    except grpc.RpcError as error:
        sys.exit(f"subscriber: gRPC error {error.code().name}: {error.details()}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
