#!/usr/bin/env python3
"""Stream-subscribe to a pgmesh subscription from Python, with the pgmesh package (python/).

Prints each delivered event as one JSON line on stdout, acks it, and exits 0 once COUNT events
have been acked by the broker. Errors go to stderr with a non-zero exit code.

    python examples/python-subscriber/subscriber.py \\
        --address 127.0.0.1:50051 --subscription orders.audit --count 3

Over TLS, trusting the CA that signed the broker's certificate, with a token (or PGMESH_TOKEN):

    python examples/python-subscriber/subscriber.py --ca-file ca.crt --token "$TOKEN" ...
"""

import argparse
import asyncio
import base64
import json
import os
import sys

try:
    import grpc
    import pgmesh
    from pgmesh.v1 import subscriber_pb2
except ImportError as error:
    sys.exit(f"subscriber: {error}: install the pgmesh package (see python/README.md)")


def event_json(event: pgmesh.ReceivedEvent) -> dict:
    raw = event.raw
    has_data = raw.HasField("data")
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "topic": event.topic,
        "time": raw.time.ToJsonString() if raw.HasField("time") else None,
        "attempt": event.attempt,
        "attributes": event.attributes,
        # The payload stays opaque here: a consumer that knows its type passes message_type= to
        # subscribe() and gets an instance of its own generated class instead.
        "dataTypeUrl": raw.data.type_url if has_data else None,
        "dataBase64": base64.b64encode(event.data).decode("ascii") if has_data else None,
    }


def read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


async def subscribe(args) -> None:
    client = pgmesh.connect(
        args.address,
        token=args.token,
        root_certificates=read(args.ca_file),
        certificate_chain=read(args.cert_file),
        private_key=read(args.key_file),
    )
    handled = 0
    acked = 0
    enough = asyncio.Event()

    def handle(event: pgmesh.ReceivedEvent) -> None:
        nonlocal handled
        print(json.dumps(event_json(event)), flush=True)
        handled += 1
        # Keep the broker from leasing more than COUNT events: extra leases would only be handed
        # back when the stream ends, and a handed-back delivery still counts as an attempt.
        subscriber.set_flow(max(0, min(args.max_outstanding, args.count - handled)))

    def on_result(result) -> None:
        nonlocal acked
        if result.status == subscriber_pb2.ACK_STATUS_ACKED:
            acked += 1
            if acked >= args.count:
                enough.set()
        else:
            # At-least-once: a stale ack (the lease lapsed) means the event comes again.
            status = subscriber_pb2.AckStatus.Name(result.status)
            print(f"subscriber: ack {result.ack_id} came back {status}", file=sys.stderr)

    subscriber = client.subscribe(
        args.subscription,
        handle,
        consumer_name="python-subscriber",
        concurrency=1,
        max_outstanding_messages=min(args.max_outstanding, args.count),
        on_result=on_result,
    )
    try:
        waiting = asyncio.ensure_future(enough.wait())
        await asyncio.wait([waiting, subscriber.done], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if subscriber.done.done():
            subscriber.done.result()  # raises the gRPC error that stopped it
    finally:
        await client.close()


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
        asyncio.run(subscribe(args))
    except grpc.aio.AioRpcError as error:
        sys.exit(f"subscriber: gRPC error {error.code().name}: {error.details()}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
