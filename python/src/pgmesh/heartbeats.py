"""Tells a quiet stream from a dead one: the broker sends a heartbeat on an idle stream every interval
it announces in `opened`; after `max_missed` intervals without any message the stream is presumed dead
(a half-open connection looks exactly like a quiet subscription otherwise)."""

from dataclasses import dataclass, field
import time
from typing import Callable, Optional


@dataclass
class HeartbeatMonitor:
    interval: float
    max_missed: int = 3
    clock: Callable[[], float] = time.monotonic
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._last = self.clock()

    @classmethod
    def for_announced(cls, interval: float, max_missed: int) -> Optional["HeartbeatMonitor"]:
        """A monitor for the interval `opened` announced; none when it announced none (a broker
        that sends no heartbeats would otherwise look dead at once) or when watching is off."""
        return cls(interval, max_missed) if interval > 0 and max_missed > 0 else None

    def beat(self) -> None:
        """Anything the broker sent counts: deliveries and results prove the stream alive too."""
        self._last = self.clock()

    def missed(self) -> int:
        """Whole intervals since the last message."""
        return int((self.clock() - self._last) // self.interval) if self.interval > 0 else 0

    def dead(self) -> bool:
        return self.interval > 0 and self.missed() >= self.max_missed

    def time_left(self) -> float:
        """Seconds until the stream counts as dead if nothing arrives (for a read timeout)."""
        return max(0.0, self._last + self.interval * self.max_missed - self.clock())
