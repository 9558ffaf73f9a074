"""Retrying a call that may or may not have reached the broker.

Only safe because every event carries its id from the client: the broker stores (topic, source, id)
once, so a publish repeated after a timeout or UNAVAILABLE is answered as a duplicate, never stored twice.
"""

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

import grpc

T = TypeVar("T")

# Codes after which the same request may succeed. RESOURCE_EXHAUSTED is not among them: the broker
# answers it to a request over its size limit, which no retry fixes.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})


@dataclass(frozen=True)
class RetrySettings:
    """Backoff between attempts, in seconds: each delay drawn at random below the current bound."""

    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    total_timeout: float = 60.0


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in RETRYABLE


async def with_retries(attempt: Callable[[float], Awaitable[T]], settings: RetrySettings) -> T:
    """Runs `attempt(seconds_left)` until it succeeds, fails for good, or the total timeout is spent."""
    deadline = time.monotonic() + settings.total_timeout
    backoff = settings.initial_backoff
    while True:
        try:
            return await attempt(max(0.001, deadline - time.monotonic()))
        except grpc.aio.AioRpcError as error:
            delay = random.random() * backoff
            if not is_retryable(error) or time.monotonic() + delay >= deadline:
                raise
            await asyncio.sleep(delay)
            backoff = min(settings.max_backoff, backoff * settings.multiplier)
