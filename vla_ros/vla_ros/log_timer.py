"""A node's periodic timer on log time, for the offline drivers of the cores.

Offline (`vla replay`, the training data, the replay regression net) nothing runs a ROS timer:
the driver feeds recorded messages in log-time order and runs each node's timer between them.
A timer ticks at the multiples of its period, the first one after the first time the driver
saw, as a timer started then would; a cycle run out of turn can restart it (a watchdog).
"""

from collections.abc import Iterator


class LogTimer:
    """Ticks every `period_ns` of log time; started by the first time it is asked about."""

    def __init__(self, period_ns: int) -> None:
        self.period_ns = period_ns
        self._next_ns: int | None = None

    def next_tick_ns(self, now_ns: int) -> int:
        """Return the next tick's time; the first is the first multiple of the period after now."""
        if self._next_ns is None:
            self._next_ns = now_ns - now_ns % self.period_ns + self.period_ns
        return self._next_ns

    def advance(self) -> int:
        """Take the next tick (the timer must have started); return its time."""
        tick_ns = self._next_ns
        self._next_ns += self.period_ns
        return tick_ns

    def restart(self, now_ns: int) -> None:
        """Tick next one period after `now_ns`, as a watchdog reset by a cycle does."""
        self._next_ns = now_ns + self.period_ns

    def due(self, now_ns: int) -> Iterator[int]:
        """Yield, in order, the times of the ticks up to and including `now_ns`."""
        while self.next_tick_ns(now_ns) <= now_ns:
            yield self.advance()
