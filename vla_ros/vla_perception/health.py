"""Health of one input stream in one frame; the values are vla_msgs/InputStatus.HEALTH_*."""

from enum import IntEnum


class Health(IntEnum):
    """Whether a stream's sample in a frame can be trusted, and if not, why."""

    OK = 0  # a sample within the maximum skew of the frame stamp
    STALE = 1  # outside the maximum skew but within the stale timeout; used anyway
    MISSING = 2  # nothing usable; the frame carries no data for the stream
    INVALID = 3  # the stream's newest message was rejected (bad encoding, size, corrupt data)
