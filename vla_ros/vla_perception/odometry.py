"""Ego odometry samples, buffered and interpolated to a frame's stamp.

Odometry usually runs faster than the cameras; the model needs the ego state at the frame's own
time, so the pose is interpolated (linear position, spherical orientation) between the two
samples around it. Time is integer nanoseconds of the ROS clock throughout.
"""

import bisect
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from vla_perception.health import Health
from vla_perception.synchronizer import stamp_to_ns


def quaternion_yaw(x: float, y: float, z: float, w: float) -> float:
    """Yaw (rotation about z) of a quaternion of any norm, rad.

    w² + x² - y² - z² rather than the unit-only 1 - 2(y² + z²): both scale with the norm squared,
    so their angle does not depend on it (a test checks this against tf_transformations).
    """
    return float(np.arctan2(2 * (w * z + x * y), w * w + x * x - y * y - z * z))


def yaw_of(orientation: object) -> float:
    """Yaw of a geometry_msgs/Quaternion (rclpy or rosbags), rad."""
    return quaternion_yaw(orientation.x, orientation.y, orientation.z, orientation.w)


@dataclass(frozen=True)
class OdometrySample:
    """Ego state at one time: pose in odom, twist in base_link (nav_msgs/Odometry convention)."""

    stamp_ns: int
    position: np.ndarray  # (3,) m, in odom
    orientation: np.ndarray  # (4,) unit quaternion x, y, z, w: base_link in odom
    linear_velocity: np.ndarray  # (3,) m/s, in base_link
    angular_velocity: np.ndarray  # (3,) rad/s, in base_link

    @property
    def yaw(self) -> float:
        """Heading of base_link in odom, rad."""
        return quaternion_yaw(*self.orientation)

    @classmethod
    def from_message(cls, msg: object) -> 'OdometrySample':
        """Read a nav_msgs/Odometry (rclpy or rosbags); refuse non-finite values by name."""
        pose, twist = msg.pose.pose, msg.twist.twist
        sample = cls(
            stamp_ns=stamp_to_ns(msg.header.stamp),
            position=np.array([pose.position.x, pose.position.y, pose.position.z]),
            orientation=np.array(
                [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
            ),
            linear_velocity=np.array([twist.linear.x, twist.linear.y, twist.linear.z]),
            angular_velocity=np.array([twist.angular.x, twist.angular.y, twist.angular.z]),
        )
        for name in ('position', 'orientation', 'linear_velocity', 'angular_velocity'):
            if not np.all(np.isfinite(getattr(sample, name))):
                raise ValueError(f'odometry {name} is not finite: {getattr(sample, name)}')
        norm = float(np.linalg.norm(sample.orientation))
        if not 0.9 < norm < 1.1:
            raise ValueError(f'odometry orientation is not a unit quaternion (norm {norm:.3f})')
        return replace(sample, orientation=sample.orientation / norm)


@dataclass(frozen=True)
class OdometryAtFrame:
    """The odometry given to a frame, with its health and the offset of the nearest sample."""

    sample: OdometrySample | None
    health: Health
    skew_ns: int


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions along the shorter arc."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear interpolation is exact enough and stable
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1.0 - fraction) * theta) * q0 + np.sin(fraction * theta) * q1) / np.sin(theta)


def interpolate(a: OdometrySample, b: OdometrySample, stamp_ns: int) -> OdometrySample:
    """Return the state at `stamp_ns` between samples `a` and `b` (a.stamp_ns < b.stamp_ns)."""
    fraction = (stamp_ns - a.stamp_ns) / (b.stamp_ns - a.stamp_ns)
    return OdometrySample(
        stamp_ns=stamp_ns,
        position=a.position + fraction * (b.position - a.position),
        orientation=slerp(a.orientation, b.orientation, fraction),
        linear_velocity=a.linear_velocity + fraction * (b.linear_velocity - a.linear_velocity),
        angular_velocity=a.angular_velocity + fraction * (b.angular_velocity - a.angular_velocity),
    )


class OdometryBuffer:
    """The newest odometry samples (bounded), answering "what was the ego state at time t"."""

    def __init__(
        self, capacity: int, max_skew_ns: int, timeout_ns: int, time_jump_ns: int
    ) -> None:
        self._samples: deque[OdometrySample] = deque(maxlen=capacity)
        self._stamps: deque[int] = deque(maxlen=capacity)
        self.max_skew_ns = max_skew_ns
        self.timeout_ns = timeout_ns
        self.time_jump_ns = time_jump_ns
        self.out_of_order = 0
        self.resets = 0

    def add(self, sample: OdometrySample) -> None:
        """Append a sample; one not newer than the newest is dropped and counted.

        A sample more than `time_jump_ns` older than the newest means time ran backwards (a bag
        loop, a clock reset): the buffer restarts from it.
        """
        if self._stamps and sample.stamp_ns < self._stamps[-1] - self.time_jump_ns:
            self._samples.clear()
            self._stamps.clear()
            self.resets += 1
        elif self._stamps and sample.stamp_ns <= self._stamps[-1]:
            self.out_of_order += 1
            return
        self._samples.append(sample)
        self._stamps.append(sample.stamp_ns)

    def at(self, stamp_ns: int) -> OdometryAtFrame:
        """Return the state at `stamp_ns`: interpolated when bracketed, else the nearest sample.

        Health: OK when interpolated or the nearest sample is within the maximum skew, STALE when
        it is within the timeout (the nearest sample is used as is), MISSING beyond or when empty.
        """
        if not self._samples:
            return OdometryAtFrame(None, Health.MISSING, 0)
        index = bisect.bisect_left(self._stamps, stamp_ns)
        if 0 < index < len(self._stamps):
            before, after = self._samples[index - 1], self._samples[index]
            nearest = before if stamp_ns - before.stamp_ns <= after.stamp_ns - stamp_ns else after
            if after.stamp_ns - before.stamp_ns <= 2 * self.timeout_ns:
                return OdometryAtFrame(
                    interpolate(before, after, stamp_ns), Health.OK, nearest.stamp_ns - stamp_ns
                )
        else:
            nearest = self._samples[min(index, len(self._samples) - 1)]
        skew_ns = nearest.stamp_ns - stamp_ns
        if abs(skew_ns) <= self.max_skew_ns:
            return OdometryAtFrame(nearest, Health.OK, skew_ns)
        if abs(skew_ns) <= self.timeout_ns:
            return OdometryAtFrame(nearest, Health.STALE, skew_ns)
        return OdometryAtFrame(None, Health.MISSING, skew_ns)
