"""Speed profiles the safety monitor puts on a path: a clamped profile and jerk-limited stops.

Both keep the path's geometry and only change when the vehicle is where: DEGRADED slows the
model's path down, a minimal-risk stop brakes along the last valid path instead of braking
blindly off the road.
"""

from dataclasses import dataclass

import numpy as np

from vla_planning.timed_path import MIN_SEGMENT_M, TimedPath, arc_lengths, poses_along

STOP_STEP_S = 0.1
"""Time between the points of a stop trajectory for its first FINE_HORIZON_S."""

FINE_HORIZON_S = 5.0
"""Beyond this (past the collision horizon) stop points are COARSE_STEP_S apart."""

COARSE_STEP_S = 0.5

STANDSTILL_MPS = 0.001
"""Below this the vehicle is at rest [Autoware MRM: MRM_SUCCEEDED below 0.001 m/s]."""


@dataclass(frozen=True)
class StopProfile:
    """How hard a stop brakes: target deceleration and the jerk used to reach it (positive)."""

    deceleration_mps2: float
    jerk_mps3: float


def clamp_speeds(
    path: TimedPath, caps_mps: np.ndarray, max_acceleration_mps2: float, max_braking_mps2: float
) -> TimedPath:
    """Return the path's geometry with speeds at most `caps_mps` (one per point).

    Speeds are first capped, then made reachable: a forward pass bounds acceleration, a
    backward pass starts braking early enough for every later cap. Times are re-derived from
    the speeds (constant acceleration between points); where the speed reaches zero the
    trajectory ends, since the points after it are never reached.
    """
    keep = np.concatenate(
        [[True], np.hypot(*np.diff(path.poses[:, :2], axis=0).T) > MIN_SEGMENT_M]
    )
    poses = path.poses[keep]
    speeds = np.maximum(np.minimum(path.speeds_mps[keep], caps_mps[keep]), 0.0)
    steps = np.diff(arc_lengths(poses[:, :2]))
    for index, step in enumerate(steps):
        reachable = np.sqrt(speeds[index] ** 2 + 2 * max_acceleration_mps2 * step)
        speeds[index + 1] = min(speeds[index + 1], reachable)
    for index in range(len(steps) - 1, -1, -1):
        reachable = np.sqrt(speeds[index + 1] ** 2 + 2 * max_braking_mps2 * steps[index])
        speeds[index] = min(speeds[index], reachable)
    moving = speeds[:-1] + speeds[1:] > STANDSTILL_MPS
    end = len(steps) if moving.all() else int(np.argmin(moving))
    if end == 0:
        return standstill(poses[0])
    durations = 2 * steps[:end] / (speeds[:end] + speeds[1 : end + 1])
    times = np.concatenate([[0.0], np.cumsum(durations)])
    speeds = speeds[: end + 1]
    forward = (speeds[1:] ** 2 - speeds[:-1] ** 2) / (2 * steps[:end])
    return TimedPath(times, poses[: end + 1], speeds, np.concatenate([forward, [0.0]]))


def standstill(pose: np.ndarray, duration_s: float = 1.0) -> TimedPath:
    """Stay at `pose`: points every STOP_STEP_S for `duration_s`, all at rest."""
    times = np.arange(0.0, duration_s + 1e-9, STOP_STEP_S)
    zeros = np.zeros(len(times))
    return TimedPath(times, np.tile(pose, (len(times), 1)), zeros, zeros)


def stop_along(
    path_xy: np.ndarray,
    heading_rad: float,
    speed_mps: float,
    acceleration_mps2: float,
    profile: StopProfile,
) -> TimedPath:
    """Brake to rest along the polyline `path_xy` (starting at the vehicle), jerk-limited.

    The deceleration moves from the current acceleration (a positive one is dropped at once:
    a stop never keeps accelerating) to the profile's target at the profile's jerk, then holds
    until standstill. Past the polyline's end the path continues straight. Points are
    STOP_STEP_S apart up to FINE_HORIZON_S, then COARSE_STEP_S (a 30 m/s comfortable stop
    lasts over 30 s; its far end needs no 0.1 s resolution).
    """
    if speed_mps <= STANDSTILL_MPS:
        return standstill(np.array([path_xy[0, 0], path_xy[0, 1], heading_rad]))
    target = -profile.deceleration_mps2
    start = min(acceleration_mps2, 0.0)
    ramp_s = abs(start - target) / profile.jerk_mps3
    # Upper bound on the stopping time: the ramp, then braking at the weaker of start/target.
    bound_s = ramp_s + speed_mps / max(profile.deceleration_mps2, 1e-3)
    fine = np.arange(0.0, min(bound_s + 2 * STOP_STEP_S, FINE_HORIZON_S), STOP_STEP_S)
    coarse = np.arange(FINE_HORIZON_S, bound_s + 2 * COARSE_STEP_S, COARSE_STEP_S)
    times = np.concatenate([fine, coarse])
    steps = times[1:] - times[:-1]

    def acceleration_at(t_s: np.ndarray) -> np.ndarray:
        ramp = start + np.sign(target - start) * profile.jerk_mps3 * t_s
        return np.maximum(ramp, target) if start >= target else np.minimum(ramp, target)

    accelerations = acceleration_at(times)
    speeds = speed_mps + np.concatenate(
        [[0.0], np.cumsum(0.5 * (accelerations[1:] + accelerations[:-1]) * steps)]
    )
    stopped = int(np.argmax(speeds <= STANDSTILL_MPS))
    # The moment of standstill, interpolated between the last two samples.
    before, after = speeds[stopped - 1], speeds[stopped]
    stop_time = times[stopped - 1] + steps[stopped - 1] * before / (before - after)
    times = np.concatenate([times[:stopped], [stop_time]])
    speeds = np.concatenate([speeds[:stopped], [0.0]])
    accelerations = np.concatenate(
        [accelerations[:stopped], np.atleast_1d(acceleration_at(stop_time))]
    )
    distances = np.concatenate(
        [[0.0], np.cumsum(0.5 * (speeds[1:] + speeds[:-1]) * (times[1:] - times[:-1]))]
    )
    poses = poses_along(path_xy, distances, heading_rad)
    if times[-1] - times[-2] < 1e-6:
        times, poses, speeds, accelerations = (
            times[:-1],
            poses[:-1],
            speeds[:-1],
            accelerations[:-1],
        )
    return TimedPath(times, poses, speeds, accelerations)
