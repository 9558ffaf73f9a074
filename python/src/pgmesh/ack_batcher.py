"""Acks go out as one message per event-loop turn rather than one per event: the broker settles a
message's ids in one transaction, which is what lets a busy consumer keep up."""

import asyncio
from typing import Callable, List, Optional


class AckBatcher:
    def __init__(self, send: Callable[[List[str]], None]) -> None:
        self._send = send
        self._pending: List[str] = []
        self._scheduled: Optional[asyncio.Handle] = None

    def add(self, ack_id: str) -> None:
        self._pending.append(ack_id)
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        ack_ids, self._pending = self._pending, []
        if ack_ids:
            self._send(ack_ids)

    def drop(self) -> None:
        """The stream broke and took its leases with it: these acks are moot (the events come back)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._pending = []
