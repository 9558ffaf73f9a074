"""Helpers for the tests against a real broker: its address (PGMESH_ADDRESS, set by
python/python-package.test.ts), unique names, and a TCP proxy that can refuse, cut or freeze."""

import asyncio
import functools
import os
import uuid

import pgmesh


def address() -> str:
    value = os.environ.get("PGMESH_ADDRESS")
    if not value:
        raise RuntimeError("PGMESH_ADDRESS is not set: run these tests through python/python-package.test.ts")
    return value


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def asyncio_test(test):
    """Runs an async test function in a fresh event loop (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 60))

    return run


async def topic_with_subscription(client: pgmesh.Client, **policy):
    """A fresh topic and one subscription of it: (topic, subscription)."""
    topic = unique("py")
    await client.create_topic(topic)
    await client.create_subscription(f"{topic}.sub", topic, **policy)
    return topic, f"{topic}.sub"


async def eventually(predicate, timeout: float = 15.0, interval: float = 0.02):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(interval)


class Proxy:
    """A TCP proxy in front of the broker. `frozen` stops forwarding on the connections it has (they
    stay open: a half-open connection, as after a network partition); new connections forward again.
    `cut()` closes every connection; `listening` False refuses new ones."""

    def __init__(self, upstream: str) -> None:
        self.host, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        self.connections = []
        self.server = None
        self.port = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> "Proxy":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop_listening(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def freeze(self) -> None:
        for connection in self.connections:
            connection["frozen"] = True

    def cut(self) -> None:
        for connection in self.connections:
            for writer in connection["writers"]:
                writer.transport.abort()
        self.connections = []

    def cut_frozen(self) -> None:
        for connection in [c for c in self.connections if c["frozen"]]:
            for writer in connection["writers"]:
                writer.transport.abort()
            self.connections.remove(connection)

    async def _serve(self, client_reader, client_writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.upstream_port)
        connection = {"frozen": False, "writers": [client_writer, upstream_writer]}
        self.connections.append(connection)

        async def pump(reader, writer):
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    if connection["frozen"]:
                        continue  # swallowed: the peer hears nothing, and is not told
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if not connection["frozen"]:
                    writer.close()

        await asyncio.gather(pump(client_reader, upstream_writer), pump(upstream_reader, client_writer))


def raw(data: bytes, **envelope) -> pgmesh.Message:
    """An event with a bytes payload: its type is ours to name (a message names its own)."""
    return pgmesh.Message(data=data, type="test.Raw", **envelope)
