"""Recorded messages through the sensor-sync core, as the live node would take them.

The node hands every message to its core on arrival, steps the core after each image and on a
timer (`step_period_s`). Offline, the log time of a message is its arrival time: messages go in
in log-time order and the core is stepped after each image and at the timer's ticks in between,
so a bag yields the frames the node would have published with instant transport. Nothing here
reads a clock, so the same messages always give the same frames (training data, replay).
"""

from dataclasses import dataclass

from vla_perception.image_preprocessing import ImageRejected
from vla_perception.sensor_sync import SensorSyncCore, SyncedFrame
from vla_perception.synchronizer import SyncConfig, to_ns
from vla_ros.log_timer import LogTimer

MIN_STEP_PERIOD_S = 0.002


def step_period_s(sync: SyncConfig) -> float:
    """Return the period of the node's step timer: a quarter of the deadline or of a period."""
    return max(min(sync.deadline_s / 4.0, 0.25 / sync.rate_hz), MIN_STEP_PERIOD_S)


@dataclass
class OfflineCounts:
    """Messages the core refused while replaying, by kind (each is also in its counters)."""

    images: int = 0
    camera_infos: int = 0
    odometry: int = 0


class OfflineSync:
    """Drive a SensorSyncCore from timestamped messages; frames come out in order."""

    def __init__(self, core: SensorSyncCore, odometry_topic: str) -> None:
        self.core = core
        self.odometry_topic = odometry_topic
        self.period_ns = to_ns(step_period_s(core.config.sync))
        self._timer = LogTimer(self.period_ns)
        self.images = {spec.image_topic: spec.name for spec in core.rig.cameras}
        self.infos = {spec.info_topic: spec.name for spec in core.rig.cameras}
        self.rejected = OfflineCounts()
        self._last_ns = 0

    @property
    def topics(self) -> set[str]:
        """The topics the core consumes."""
        return {*self.images, *self.infos, self.odometry_topic}

    def feed(self, topic: str, message: object, log_time_ns: int) -> list[SyncedFrame]:
        """Deliver one message at its log time; return the frames published until then."""
        frames = self._ticks_until(log_time_ns)
        if topic in self.images:
            try:
                self.core.on_image(self.images[topic], message, log_time_ns)
            except ImageRejected:
                self.rejected.images += 1
            frames += self._step(log_time_ns)
        elif topic in self.infos:
            try:
                self.core.on_camera_info(self.infos[topic], message)
            except ImageRejected:
                self.rejected.camera_infos += 1
        elif topic == self.odometry_topic:
            try:
                self.core.on_odometry(message)
            except ValueError:
                self.rejected.odometry += 1
        return frames

    def finish(self) -> list[SyncedFrame]:
        """Run the timer past the last message until the core has nothing left to emit."""
        sync = self.core.config.sync
        return self._ticks_until(self._last_ns + to_ns(sync.deadline_s) + 2 * self.period_ns)

    def _ticks_until(self, now_ns: int) -> list[SyncedFrame]:
        self._last_ns = max(self._last_ns, now_ns)
        frames = []
        for tick_ns in self._timer.due(now_ns):
            frames += self._step(tick_ns)
        return frames

    def _step(self, now_ns: int) -> list[SyncedFrame]:
        frame = self.core.step(now_ns)
        self.core.drain_rejections()
        return [] if frame is None else [frame]
