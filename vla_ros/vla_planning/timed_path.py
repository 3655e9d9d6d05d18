"""A trajectory as arrays, and the geometry the safety monitor does with it.

The monitor trusts only a plan's poses and times: speeds, accelerations and turn rates are
derived from them here (a plan whose velocity fields disagree with its geometry would otherwise
pass the checks and drive differently). Headings along the path are the direction of travel.
"""

import math
from dataclasses import dataclass

import numpy as np

MIN_SEGMENT_M = 1e-3
"""Shorter segments carry no direction: the previous course is kept."""
GEOMETRY_INTERVAL_M = 1.0
"""Turn angles and curvatures are measured between points at least this far apart.

[Autoware planning validator: relative angle, curvature, lateral acceleration and steering are
checked on the trajectory resampled without interpolation at min_interval 1.0 m, "because the
following metrics can not be evaluated for closed points"]. Between points a few centimetres
apart, as a plan has when the car stands or creeps, the direction of travel is noise.
"""


@dataclass(frozen=True)
class TimedPath:
    """Timed poses from the path's own start; the first point is at time 0.

    Poses are (x, y, heading) in one frame; speeds and accelerations are along the path.
    """

    times_s: np.ndarray  # (n,) strictly increasing, times_s[0] == 0
    poses: np.ndarray  # (n, 3) m, m, rad
    speeds_mps: np.ndarray  # (n,)
    accelerations_mps2: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.times_s)


@dataclass(frozen=True)
class PathTurns:
    """How a timed path turns, one value per segment: course changes and what follows."""

    speeds_mps: np.ndarray  # segment length over segment time
    turn_angles_rad: np.ndarray  # course change from the previous segment
    yaw_rates_rps: np.ndarray
    curvatures_1pm: np.ndarray


def courses(xy: np.ndarray, initial_rad: float) -> np.ndarray:
    """Direction of travel of each segment; a segment shorter than MIN_SEGMENT_M keeps the last."""
    steps = xy[1:] - xy[:-1]
    raw = np.arctan2(steps[:, 1], steps[:, 0])
    moving = np.hypot(steps[:, 0], steps[:, 1]) >= MIN_SEGMENT_M
    if moving.all():
        return raw
    last_moving = np.maximum.accumulate(np.where(moving, np.arange(len(raw)), -1))
    return np.where(last_moving >= 0, raw[np.maximum(last_moving, 0)], initial_rad)


def wrap(angles: np.ndarray) -> np.ndarray:
    """Angles wrapped to (-pi, pi]."""
    return np.arctan2(np.sin(angles), np.cos(angles))


def unwrap(angles: np.ndarray) -> np.ndarray:
    """Angles made continuous (steps below pi), for interpolation; a fast np.unwrap."""
    if len(angles) < 2:
        return angles
    steps = wrap(angles[1:] - angles[:-1])
    return np.concatenate([angles[:1], angles[0] + np.cumsum(steps)])


def path_turns(times_s: np.ndarray, poses: np.ndarray) -> PathTurns:
    """Derive segment speeds, course changes, turn rates and curvatures of a timed path.

    The first segment's turn is measured from the first pose's heading, so a plan that starts
    sideways to the vehicle shows as a sharp turn.
    """
    dt = times_s[1:] - times_s[:-1]
    lengths = np.hypot(*(poses[1:, :2] - poses[:-1, :2]).T)
    course = courses(poses[:, :2], float(poses[0, 2]) if len(poses) else 0.0)
    turns = wrap(np.concatenate([course[:1] - poses[:1, 2], course[1:] - course[:-1]]))
    return PathTurns(
        speeds_mps=lengths / dt,
        turn_angles_rad=turns,
        yaw_rates_rps=turns / dt,
        curvatures_1pm=np.divide(turns, lengths, out=np.zeros_like(turns), where=lengths > 0),
    )


def thinned(
    times_s: np.ndarray, poses: np.ndarray, min_interval_m: float = GEOMETRY_INTERVAL_M
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first point and each one farther than `min_interval_m` from the last kept.

    No interpolation: the kept points are the path's own, with their times.
    """
    if len(poses) == 0:
        return times_s, poses
    kept = [0]
    last_x, last_y = poses[0, :2].tolist()
    for index, (x, y) in enumerate(poses[1:, :2].tolist(), start=1):
        if math.hypot(x - last_x, y - last_y) > min_interval_m:
            kept.append(index)
            last_x, last_y = x, y
    return times_s[kept], poses[kept]


def jerks(path: TimedPath) -> np.ndarray:
    """Change of the points' accelerations over time, m/s^3 (the last point repeats one)."""
    accelerations, times = path.accelerations_mps2[:-1], path.times_s[:-1]
    return (accelerations[1:] - accelerations[:-1]) / (times[1:] - times[:-1])


def from_plan(times_s: np.ndarray, poses: np.ndarray) -> TimedPath:
    """Build a TimedPath from a model plan in base_link at its stamp: the vehicle (origin) first.

    Speeds and accelerations are derived from the geometry: a point's speed is that of the
    segment reaching it, the origin gets the first segment's speed (as
    vla_planning.inference_core.path_kinematics does), and a point's acceleration is the one
    that reaches the next point's speed; the origin's is the first point's, since its speed is
    a copy: a forward difference there would read 0 and make a plan that brakes steadily from
    its start jump in jerk by its whole deceleration over one step.
    """
    times = np.concatenate([[0.0], times_s])
    all_poses = np.vstack([np.zeros((1, 3)), poses])
    segment_speeds = np.hypot(*(all_poses[1:, :2] - all_poses[:-1, :2]).T) / (
        times[1:] - times[:-1]
    )
    speeds = np.concatenate([segment_speeds[:1], segment_speeds])
    accelerations = accelerations_from_speeds(times, speeds)
    accelerations[0] = accelerations[min(1, len(accelerations) - 1)]
    return TimedPath(times, all_poses, speeds, accelerations)


def accelerations_from_speeds(times_s: np.ndarray, speeds_mps: np.ndarray) -> np.ndarray:
    """Forward-difference accelerations; the last point repeats the one before it."""
    if len(times_s) < 2:
        return np.zeros_like(speeds_mps)
    forward = (speeds_mps[1:] - speeds_mps[:-1]) / (times_s[1:] - times_s[:-1])
    return np.concatenate([forward, forward[-1:]])


def transform(path: TimedPath, pose: np.ndarray) -> TimedPath:
    """Express a path given in the frame of `pose` (x, y, yaw) in the frame `pose` is in."""
    x, y, yaw = pose
    cos, sin = math.cos(yaw), math.sin(yaw)
    local = path.poses
    moved = np.column_stack(
        [
            x + cos * local[:, 0] - sin * local[:, 1],
            y + sin * local[:, 0] + cos * local[:, 1],
            local[:, 2] + yaw,
        ]
    )
    return TimedPath(path.times_s, moved, path.speeds_mps, path.accelerations_mps2)


def state_at(path: TimedPath, t_s: float) -> tuple[np.ndarray, float, float]:
    """Return the pose, speed and acceleration at `t_s` (clamped to the path's times)."""
    headings = unwrap(path.poses[:, 2])
    pose = np.array(
        [
            np.interp(t_s, path.times_s, path.poses[:, 0]),
            np.interp(t_s, path.times_s, path.poses[:, 1]),
            np.interp(t_s, path.times_s, headings),
        ]
    )
    speed = float(np.interp(t_s, path.times_s, path.speeds_mps))
    return pose, speed, float(np.interp(t_s, path.times_s, path.accelerations_mps2))


def retime(path: TimedPath, elapsed_s: float) -> TimedPath:
    """Return the rest of the path `elapsed_s` after its start, with time 0 at that moment.

    Empty when the path has ended.
    """
    if len(path) == 0 or elapsed_s > path.times_s[-1]:
        return TimedPath(np.zeros(0), np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    keep = path.times_s > elapsed_s
    pose, speed, acceleration = state_at(path, elapsed_s)
    return TimedPath(
        np.concatenate([[0.0], path.times_s[keep] - elapsed_s]),
        np.vstack([pose, path.poses[keep]]),
        np.concatenate([[speed], path.speeds_mps[keep]]),
        np.concatenate([[acceleration], path.accelerations_mps2[keep]]),
    )


def arc_lengths(xy: np.ndarray) -> np.ndarray:
    """Cumulative distance along a polyline, starting at 0."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*(xy[1:] - xy[:-1]).T))])


def poses_along(xy: np.ndarray, distances_m: np.ndarray, final_heading: float) -> np.ndarray:
    """Poses at `distances_m` along a polyline, continued straight past its end.

    Headings are the polyline's direction of travel (final_heading where it has none).
    """
    stations = arc_lengths(xy)
    unique = np.concatenate([[True], (stations[1:] - stations[:-1]) > MIN_SEGMENT_M])
    stations, xy = stations[unique], xy[unique]
    length = float(stations[-1])
    inside = np.minimum(distances_m, length)
    x = np.interp(inside, stations, xy[:, 0])
    y = np.interp(inside, stations, xy[:, 1])
    if len(xy) > 1:
        segment = np.clip(np.searchsorted(stations, inside, side='right') - 1, 0, len(xy) - 2)
        course = np.arctan2(*(xy[1:] - xy[:-1])[:, ::-1].T)
        headings = course[segment]
        end_heading = float(course[-1])
    else:
        headings = np.full(len(distances_m), final_heading)
        end_heading = final_heading
    beyond = np.maximum(distances_m - length, 0.0)
    x = x + beyond * math.cos(end_heading)
    y = y + beyond * math.sin(end_heading)
    headings = np.where(beyond > 0, end_heading, headings)
    return np.column_stack([x, y, headings])


@dataclass(frozen=True)
class Projection:
    """Where points fall on a polyline: each point's nearest place on it."""

    station_m: np.ndarray  # (n,) distance along the polyline to that place
    lateral_m: np.ndarray  # (n,) distance from the point to it
    direction: np.ndarray  # (n, 2) unit direction of the segment there
    next_vertex: np.ndarray  # (n,) index of the polyline vertex that ends that segment


def project_onto_polyline(
    xy: np.ndarray, points: np.ndarray, extend_end: bool = False
) -> Projection | None:
    """Project `points` (n, 2) onto the polyline `xy`; None if it has no length.

    With `extend_end`, the last segment continues as a ray (whatever lies ahead of the end).
    """
    starts = xy[:-1]
    directions = xy[1:] - starts
    lengths = np.hypot(directions[:, 0], directions[:, 1])
    valid = lengths > 1e-6
    if not valid.any():
        return None
    vertices = np.nonzero(valid)[0] + 1
    starts, directions, lengths = starts[valid], directions[valid], lengths[valid]
    ux, uy = directions[:, 0] / lengths, directions[:, 1] / lengths
    px, py = points[:, :1], points[:, 1:2]  # (n, 1) against (m,) segments
    along = (px - starts[:, 0]) * ux + (py - starts[:, 1]) * uy
    upper = np.concatenate([lengths[:-1], [math.inf if extend_end else lengths[-1]]])
    along = np.minimum(np.maximum(along, 0.0), upper)
    lateral_squared = (px - starts[:, 0] - along * ux) ** 2 + (py - starts[:, 1] - along * uy) ** 2
    segment = np.argmin(lateral_squared, axis=1)
    rows = np.arange(len(points))
    return Projection(
        station_m=np.concatenate([[0.0], np.cumsum(lengths)])[segment] + along[rows, segment],
        lateral_m=np.sqrt(lateral_squared[rows, segment]),
        direction=np.column_stack([ux[segment], uy[segment]]),
        next_vertex=vertices[segment],
    )
