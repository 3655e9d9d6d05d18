"""builtin_interfaces/Time from the integer nanoseconds the cores count in."""

from builtin_interfaces.msg import Time

NS_PER_S = 1_000_000_000


def to_time(stamp_ns: int) -> Time:
    """Convert integer nanoseconds to builtin_interfaces/Time."""
    return Time(sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)
