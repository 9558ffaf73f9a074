"""What a handler raises to choose its event's fate other than ack (return) or retry (any other error)."""


class RejectEvent(Exception):
    """Raised by a handler: the event is poison, dead-letter it now (a Reject on the stream)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RetryEventAfter(Exception):
    """Raised by a handler: try the event again after `seconds` (a Nack with a delay)."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        super().__init__(reason or f"retry after {seconds} s")
        self.seconds = seconds
        self.reason = reason


def reject(reason: str = "") -> RejectEvent:
    """`raise reject("bad address")` in a handler dead-letters the event."""
    return RejectEvent(reason)


def retry_after(seconds: float, reason: str = "") -> RetryEventAfter:
    """`raise retry_after(30)` in a handler retries the event in 30 s, whatever the subscription's backoff."""
    return RetryEventAfter(seconds, reason)
