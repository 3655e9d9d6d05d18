"""vla_msgs/Trajectory as autoware_planning_msgs/Trajectory, in the frame Autoware reads.

Autoware's consumers of `/planning/scenario_planning/trajectory` read its poses in `map`. The
safety monitor publishes in the odometry's frame: where that is `map` (Autoware's localisation
publishes `/localization/kinematic_state` in `map`) the poses are copied as they are; where it
is another frame (`odom`) they are moved by a declared map <- odometry-frame transform; with
neither, the trajectory is refused, never relabelled. vla_msgs/TrajectoryPoint has Autoware's
field names, types and order, so every other field is copied unchanged; `origin` has no
Autoware counterpart and is dropped.
"""

import math
from dataclasses import dataclass

from geometry_msgs.msg import Pose
from vla_msgs.msg import Trajectory

from vla_autoware.mirror import mirrored


@dataclass(frozen=True)
class PlanarTransform:
    """Where a frame lies in a parent frame (REP 103: x forward, y left, yaw about z up)."""

    x_m: float
    y_m: float
    yaw_rad: float

    def __post_init__(self) -> None:
        """Refuse a transform with a non-finite value."""
        if not all(math.isfinite(value) for value in (self.x_m, self.y_m, self.yaw_rad)):
            raise ValueError(f'the map <- odometry transform is not finite: {self}')

    def pose(self, pose: Pose) -> Pose:
        """Return `pose` (in the child frame) expressed in the parent frame."""
        cos, sin = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        p, q = pose.position, pose.orientation
        moved = Pose()
        moved.position.x = self.x_m + cos * p.x - sin * p.y
        moved.position.y = self.y_m + sin * p.x + cos * p.y
        moved.position.z = p.z
        # The yaw quaternion (0, 0, sz, cz) times q: a rotation about the parent's z axis.
        sz, cz = math.sin(self.yaw_rad / 2), math.cos(self.yaw_rad / 2)
        o = moved.orientation
        o.x = cz * q.x - sz * q.y
        o.y = cz * q.y + sz * q.x
        o.z = cz * q.z + sz * q.w
        o.w = cz * q.w - sz * q.z
        return moved


def placement(
    frame_id: str,
    odometry_frame: str,
    autoware_frame: str,
    autoware_from_odometry: PlanarTransform | None,
) -> PlanarTransform | None:
    """Return the transform that puts poses of `frame_id` in `autoware_frame` (None: as they are).

    Raises ValueError naming the frames when the poses cannot be placed there: a `base_link`
    trajectory (the monitor's stop before any odometry) or an odometry frame with no declared
    transform.
    """
    if frame_id == autoware_frame:
        return None
    if frame_id == odometry_frame and autoware_from_odometry is not None:
        return autoware_from_odometry
    declared = 'declared' if autoware_from_odometry is not None else 'no'
    raise ValueError(
        f'trajectory frame {frame_id!r} is not {autoware_frame!r} and cannot be placed there '
        f'(odometry frame {odometry_frame!r}, {declared} map <- odometry transform)'
    )


def autoware_trajectory(
    message: Trajectory,
    trajectory_type: type,
    point_type: type,
    autoware_frame: str,
    transform: PlanarTransform | None,
) -> object:
    """Copy `message` into Autoware's Trajectory, its poses moved by `transform` (if any)."""
    header = type(message.header)(stamp=message.header.stamp, frame_id=autoware_frame)
    points = []
    for point in message.points:
        copy = mirrored(point, point_type)
        if transform is not None:
            copy.pose = transform.pose(point.pose)
        points.append(copy)
    return trajectory_type(header=header, points=points)
