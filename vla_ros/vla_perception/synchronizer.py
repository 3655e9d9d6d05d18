"""Approximate-time matching of N camera streams, with a maximum skew, a rate and a deadline.

message_filters' ApproximateTimeSynchronizer goes silent when one topic stops, never evicts by
age, and breaks when time runs backwards. A driving stack needs the opposite, so this matcher:

- emits a frame as soon as every live camera has a sample within `max_skew` of the frame stamp
  (the newest stamp of the set), choosing the freshest such set;
- otherwise emits the freshest set at the **deadline**, `deadline` after the first sample that
  may stamp the next frame arrived, with the cameras that have nothing within the skew marked
  STALE (their newest sample reused), INVALID or MISSING, so a dead camera degrades frames
  instead of silencing them;
- does not wait for cameras that have sent nothing for `stale_timeout` (dead ones);
- never emits two frames closer than 3/4 of the period (the rate is an upper bound);
- resets on time running backwards by more than `time_jump` (bag loop, clock reset) and bumps
  the epoch, so consumers can reset temporal state; drops out-of-order samples, counted;
- bounds every queue (`queue_size` per camera), whatever the input.

Pure logic: time is passed in as integer nanoseconds of the node's clock; payloads are opaque.
"""

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from vla_perception.health import Health

NS_PER_S = 1_000_000_000
MIN_SPACING_OF_PERIOD = 0.75


def to_ns(seconds: float) -> int:
    """Convert seconds to integer nanoseconds."""
    return round(seconds * NS_PER_S)


def stamp_to_ns(stamp: object) -> int:
    """Convert a builtin_interfaces/Time (rclpy or rosbags) to integer nanoseconds."""
    return stamp.sec * NS_PER_S + stamp.nanosec


@dataclass(frozen=True)
class SyncConfig:
    """Matching parameters; see the module docstring for what each one does."""

    camera_names: tuple[str, ...]
    rate_hz: float = 10.0
    max_skew_s: float = 0.05
    deadline_s: float = 0.1
    stale_timeout_s: float = 0.5
    queue_size: int = 8
    time_jump_s: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            problems.append(f'camera_names must be non-empty and unique, got {self.camera_names}')
        for name in ('rate_hz', 'max_skew_s', 'deadline_s', 'stale_timeout_s', 'time_jump_s'):
            value = getattr(self, name)
            if not value > 0.0:  # also refuses NaN
                problems.append(f'{name} must be > 0, got {value}')
        if self.queue_size < 1:
            problems.append(f'queue_size must be >= 1, got {self.queue_size}')
        if problems:
            raise ValueError('; '.join(problems))


@dataclass(frozen=True)
class Sample:
    """One accepted message of a camera."""

    stamp_ns: int  # header stamp
    receive_ns: int  # node clock when it arrived
    payload: Any


@dataclass(frozen=True)
class CameraMatch:
    """What one camera contributes to a frame."""

    name: str
    health: Health
    sample: Sample | None  # None when MISSING or INVALID
    skew_ns: int  # sample stamp minus frame stamp; 0 without a sample


@dataclass(frozen=True)
class MatchedSet:
    """A frame's worth of camera samples."""

    stamp_ns: int
    sequence: int
    epoch: int
    complete: bool  # every camera OK
    cameras: tuple[CameraMatch, ...]


@dataclass
class CameraCounters:
    """Per-camera counts since start, for diagnostics."""

    accepted: int = 0
    rejected: int = 0  # reported by the caller: the message failed validation or decoding
    out_of_order: int = 0  # stamp not newer than the camera's newest: dropped
    late: int = 0  # stamp not newer than the last frame: too late to join one
    overflow: int = 0  # evicted unused because the queue was full
    not_ok: int = 0  # frames in which this camera was not OK


@dataclass
class SyncCounters:
    """Counts since start, for diagnostics."""

    frames_complete: int = 0
    frames_at_deadline: int = 0
    resets: int = 0
    cameras: dict[str, CameraCounters] = field(default_factory=dict)


class RigSynchronizer:
    """Match camera samples into frames; `add` samples as they come and `step` on a timer."""

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        self._skew_ns = to_ns(config.max_skew_s)
        self._deadline_ns = to_ns(config.deadline_s)
        self._stale_ns = to_ns(config.stale_timeout_s)
        self._jump_ns = to_ns(config.time_jump_s)
        self._min_spacing_ns = to_ns(MIN_SPACING_OF_PERIOD / config.rate_hz)
        names = config.camera_names
        self._queues: dict[str, deque[Sample]] = {
            n: deque(maxlen=config.queue_size) for n in names
        }
        self._newest: dict[str, Sample | None] = dict.fromkeys(names)
        self._last_receive_ns: dict[str, int | None] = dict.fromkeys(names)
        self._newest_rejected: dict[str, bool] = dict.fromkeys(names, False)
        self._last_frame_ns: int | None = None
        self._last_now_ns: int | None = None
        self._start_ns: int | None = None  # first clock reading of this epoch
        # Arrival of the first sample that may stamp the next frame: the deadline runs from here,
        # not from the oldest queued sample, which a full queue may already have evicted.
        self._waiting_since_ns: int | None = None
        self.epoch = 0
        self.sequence = 0
        self.counters = SyncCounters(cameras={name: CameraCounters() for name in names})

    def queued(self) -> dict[str, int]:
        """Return the number of samples waiting per camera (bounded by queue_size)."""
        return {name: len(queue) for name, queue in self._queues.items()}

    def add(self, camera: str, stamp_ns: int, receive_ns: int, payload: Any) -> bool:
        """Offer a camera sample; return whether it was queued (dropped ones are counted)."""
        counters = self._camera_counters(camera)
        self._observe_clock(receive_ns)
        if self._last_frame_ns is not None and stamp_ns < self._last_frame_ns - self._jump_ns:
            self._reset()
        self._last_receive_ns[camera] = receive_ns
        queue, newest = self._queues[camera], self._newest[camera]
        if newest is not None and stamp_ns <= newest.stamp_ns:
            counters.out_of_order += 1
            return False
        sample = Sample(stamp_ns, receive_ns, payload)
        self._newest[camera] = sample
        self._newest_rejected[camera] = False
        if self._last_frame_ns is not None and stamp_ns <= self._last_frame_ns:
            counters.late += 1
            return False
        if len(queue) == queue.maxlen:
            counters.overflow += 1
        queue.append(sample)
        if self._waiting_since_ns is None and self._is_pivot(stamp_ns):
            self._waiting_since_ns = receive_ns
        counters.accepted += 1
        return True

    def reject(self, camera: str, receive_ns: int) -> None:
        """Record that the camera's newest message was unusable (it is marked INVALID)."""
        self._camera_counters(camera).rejected += 1
        self._observe_clock(receive_ns)
        self._last_receive_ns[camera] = receive_ns
        self._newest_rejected[camera] = True

    def step(self, now_ns: int) -> MatchedSet | None:
        """Return the next frame if one is due at `now_ns`, else None."""
        self._observe_clock(now_ns)
        # Queues hold only samples newer than the last frame (older ones are popped on emission).
        candidates = [
            s for queue in self._queues.values() for s in queue if self._is_pivot(s.stamp_ns)
        ]
        if not candidates:
            return None
        stamps = {name: [s.stamp_ns for s in queue] for name, queue in self._queues.items()}
        live = [name for name in self.config.camera_names if self._is_live(name, now_ns)]
        pivots = sorted({s.stamp_ns for s in candidates}, reverse=True)
        for pivot in pivots:  # freshest first
            matches = self._match(stamps, pivot)
            if all(name in matches for name in live):
                return self._emit(pivot, matches)
        if self._waiting_since_ns is None or now_ns - self._waiting_since_ns < self._deadline_ns:
            return None
        # The set with the most cameras, the freshest of those: a newer set may have only begun
        # to arrive when the deadline of an older, almost complete one expires.
        matched = {pivot: self._match(stamps, pivot) for pivot in pivots}
        pivot = max(pivots, key=lambda p: (len(matched[p]), p))
        return self._emit(pivot, matched[pivot])

    def _camera_counters(self, camera: str) -> CameraCounters:
        try:
            return self.counters.cameras[camera]
        except KeyError:
            raise ValueError(
                f'unknown camera {camera!r}; the rig has {", ".join(self.config.camera_names)}'
            ) from None

    def _is_pivot(self, stamp_ns: int) -> bool:
        """Whether a frame may be stamped `stamp_ns` (keeps frames at most at the rate)."""
        return (
            self._last_frame_ns is None or stamp_ns - self._last_frame_ns >= self._min_spacing_ns
        )

    def _is_live(self, camera: str, now_ns: int) -> bool:
        """Whether to wait for the camera: it sent within the stale timeout, or may still start."""
        last = self._last_receive_ns[camera]
        if last is None:
            return now_ns - self._start_ns <= self._stale_ns
        return now_ns - last <= self._stale_ns

    def _match(self, stamps: dict[str, list[int]], pivot: int) -> dict[str, Sample]:
        """Return the newest sample per camera with stamp in [pivot - max_skew, pivot]."""
        matches = {}
        for name, camera_stamps in stamps.items():
            index = bisect.bisect_right(camera_stamps, pivot) - 1
            if index >= 0 and pivot - camera_stamps[index] <= self._skew_ns:
                matches[name] = self._queues[name][index]
        return matches

    def _emit(self, pivot: int, matches: dict[str, Sample]) -> MatchedSet:
        cameras = []
        for name in self.config.camera_names:
            match = (
                self._unmatched(name, pivot)
                if name not in matches
                else CameraMatch(name, Health.OK, matches[name], matches[name].stamp_ns - pivot)
            )
            if match.health != Health.OK:
                self.counters.cameras[name].not_ok += 1
            cameras.append(match)
        complete = len(matches) == len(self.config.camera_names)
        if complete:
            self.counters.frames_complete += 1
        else:
            self.counters.frames_at_deadline += 1
        frame = MatchedSet(pivot, self.sequence, self.epoch, complete, tuple(cameras))
        self.sequence += 1
        self._last_frame_ns = pivot
        for queue in self._queues.values():
            while queue and queue[0].stamp_ns <= pivot:
                queue.popleft()
        waiting = [
            s.receive_ns for q in self._queues.values() for s in q if self._is_pivot(s.stamp_ns)
        ]
        self._waiting_since_ns = min(waiting, default=None)
        return frame

    def _unmatched(self, name: str, pivot: int) -> CameraMatch:
        if self._newest_rejected[name]:
            return CameraMatch(name, Health.INVALID, None, 0)
        newest = self._newest[name]
        if newest is not None and abs(newest.stamp_ns - pivot) <= self._stale_ns:
            return CameraMatch(name, Health.STALE, newest, newest.stamp_ns - pivot)
        return CameraMatch(name, Health.MISSING, None, 0)

    def _observe_clock(self, now_ns: int) -> None:
        if self._last_now_ns is not None and now_ns < self._last_now_ns - self._jump_ns:
            self._last_now_ns = now_ns
            self._reset()
        if self._start_ns is None:
            self._start_ns = now_ns
        self._last_now_ns = now_ns

    def _reset(self) -> None:
        """Forget all timing state after a time jump; the next frames start a new epoch."""
        for queue in self._queues.values():
            queue.clear()
        self._newest = dict.fromkeys(self._newest)
        self._last_receive_ns = dict.fromkeys(self._last_receive_ns)
        self._last_frame_ns = None
        self._waiting_since_ns = None
        self._start_ns = self._last_now_ns
        self.epoch += 1
        self.counters.resets += 1
